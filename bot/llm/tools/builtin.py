"""Built-in tools. Each returns JSON text: the framework str()s whatever a tool returns."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from livekit.agents import FunctionTool, ToolError, function_tool

from ...transport import Peer
from .calculator import CalcError, evaluate
from .untrusted import untrusted_json, untrusted_text

MAX_LISTED = 50  # participants the tool lists (a room of thousands is not one answer)


@function_tool
async def current_time(timezone: str = "UTC") -> str:
    """Get the current date and time in a timezone.

    Args:
        timezone: An IANA timezone name such as "Europe/Paris" or "America/New_York".
    """
    try:
        now = datetime.now(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"unknown timezone {timezone!r}; use an IANA name like Europe/Paris"
        ) from None
    return json.dumps(
        {
            "timezone": timezone,
            "iso": now.isoformat(timespec="seconds"),
            "weekday": now.strftime("%A"),
        }
    )


@function_tool
async def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "(17 * 3) / 4" or "sqrt(2) ** 3".

    Args:
        expression: Numbers, + - * / // % ** and sqrt, abs, round, min, max, log, sin, cos, tan.
    """
    try:
        # off the event loop: the room's other users are served while it computes
        result = await asyncio.to_thread(evaluate, expression)
    except CalcError as e:
        raise ToolError(str(e)) from None
    return json.dumps({"expression": expression, "result": result})


def make_participants_tool(peers: Callable[[], list[Peer]]) -> FunctionTool[..., Any]:
    @function_tool
    async def participants() -> str:
        """List the people and agents currently in this room."""
        # names and identities are chosen by those people: data for this user's model
        listing = [
            {"identity": untrusted_text(p.identity), "name": untrusted_text(p.name), "kind": p.kind}
            for p in peers()[:MAX_LISTED]
        ]
        return untrusted_json({"participants": listing, "more": len(peers()) > MAX_LISTED})

    return participants


def builtin_tools(peers: Callable[[], list[Peer]]) -> dict[str, FunctionTool[..., Any]]:
    return {
        "current_time": current_time,
        "calculate": calculate,
        "participants": make_participants_tool(peers),
    }
