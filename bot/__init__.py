"""lkbot: a private, multi-user text chat bot for LiveKit rooms."""

__version__ = "0.1.0"
