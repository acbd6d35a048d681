"""A turn: one accepted chat.message of one sender, from queue to `turn.end`."""

from __future__ import annotations

import asyncio
import secrets
from contextvars import ContextVar
from dataclasses import dataclass, field

from pydantic import JsonValue


def new_turn_id() -> str:
    return "t_" + secrets.token_hex(6)


@dataclass
class Turn:
    request_id: str
    text: str
    topic: str
    metadata: dict[str, JsonValue] | None = None  # the chat.message's, for history and tools
    allowed: frozenset[str] | None = None  # the bot's tools the sender may use (None: all)
    id: str = field(default_factory=new_turn_id)
    cancel_reason: str | None = None
    task: asyncio.Task[None] | None = None

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        if self.task is not None:
            self.task.cancel()


_CURRENT: ContextVar[Turn | None] = ContextVar("lkbot_current_turn", default=None)


def current_turn() -> Turn | None:
    """The turn being run, for tools: e.g. `current_turn().metadata` is the metadata the
    client sent with its chat.message. None outside a turn."""
    return _CURRENT.get()
