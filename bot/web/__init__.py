"""The chat page and the LiveKit-style token endpoint (`bot up`, `bot web`)."""
