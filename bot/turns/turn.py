"""A turn: one accepted chat.message of one sender, from queue to `turn.end`."""

from __future__ import annotations

import asyncio
import secrets
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import JsonValue

if TYPE_CHECKING:
    from ..llm.tools.grants import Grant
    from .suspension import Suspension

# Why a turn may be stopped that the sender did not ask for: a turn waiting for the
# sender's approval is then detached (kept in the store, continued by the conversation's
# next writer) instead of cancelled.
DETACHING = frozenset({"participant_left", "superseded", "shutdown", "handing_over"})


def new_turn_id() -> str:
    return "t_" + secrets.token_hex(6)


@dataclass
class Turn:
    request_id: str
    text: str
    topic: str
    metadata: dict[str, JsonValue] | None = None  # the chat.message's, for history and tools
    allowed: frozenset[str] | None = None  # the bot's tools the sender may use (None: all)
    grant: Grant | None = None  # the sender's verified grant (tools may forward it)
    id: str = field(default_factory=new_turn_id)
    cancel_reason: str | None = None
    task: asyncio.Task[None] | None = None
    resumed: Suspension | None = None  # continued from the store where it waited
    suspended: bool = False  # waits for the sender's approval now
    detached: bool = False  # stopped while it waited: the store keeps it, nothing is sent

    def cancel(self, reason: str) -> None:
        if self.suspended and reason in DETACHING and self.cancel_reason is None:
            self.detached = True
        if self.cancel_reason is None:
            self.cancel_reason = reason
        if self.task is not None:
            self.task.cancel()


_CURRENT: ContextVar[Turn | None] = ContextVar("lkbot_current_turn", default=None)


def current_turn() -> Turn | None:
    """The turn being run, for tools: e.g. `current_turn().metadata` is the metadata the
    client sent with its chat.message, and `current_turn().grant` the sender's verified
    grant (its `claims`, and `token` to pass on to the app's backend). None outside a
    turn."""
    return _CURRENT.get()
