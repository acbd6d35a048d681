"""The Python client of the protocol (`bot_client`) and the terminal chat (`terminal`)."""

from .bot_client import BotClient, TurnResult

__all__ = ["BotClient", "TurnResult"]
