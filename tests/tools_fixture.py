"""Tools used by tests through BOT_TOOLS_MODULE."""

from __future__ import annotations

import asyncio
import json

from livekit.agents import function_tool

from bot.turns.turn import current_turn


@function_tool
async def boom() -> str:
    """A tool that crashes."""
    raise RuntimeError("tool exploded")


@function_tool
async def slow(seconds: float = 60.0) -> str:
    """A tool that takes long."""
    await asyncio.sleep(seconds)
    return "finally"


@function_tool
async def echo(text: str) -> str:
    """Returns its input."""
    return text


@function_tool
async def turn_metadata() -> str:
    """Returns the metadata the client sent with the running turn's chat.message."""
    turn = current_turn()
    return json.dumps(turn.metadata if turn is not None else "no turn")


@function_tool
async def publish_note(text: str) -> str:
    """Publishes a note for everyone (the e2e workers ask the user first:
    BOT_APPROVAL_TOOLS=publish_note)."""
    return f"published: {text}"
