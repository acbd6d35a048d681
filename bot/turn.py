"""A turn, and the emitter that sends its events to the one sender it belongs to."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Literal

from pydantic import JsonValue

from .outbox import Outbox
from .protocol.server import (
    ErrorInfo,
    ToolStatus,
    TurnDelta,
    TurnEnd,
    TurnEndStatus,
    TurnReply,
    TurnStart,
    TurnStatus,
    TurnToolCall,
    TurnToolResult,
    Usage,
)


def new_turn_id() -> str:
    return "t_" + secrets.token_hex(6)


@dataclass
class Turn:
    request_id: str
    text: str
    topic: str
    metadata: dict[str, JsonValue] | None = None
    id: str = field(default_factory=new_turn_id)
    cancel_reason: str | None = None
    task: asyncio.Task[None] | None = None

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        if self.task is not None:
            self.task.cancel()


class TurnEmitter:
    """Sends one turn's events; guarantees at most one `turn.end`."""

    def __init__(self, outbox: Outbox, turn: Turn) -> None:
        self._outbox = outbox
        self._turn = turn
        self.ended = False

    def _put(
        self,
        msg: TurnStart
        | TurnStatus
        | TurnDelta
        | TurnToolCall
        | TurnToolResult
        | TurnReply
        | TurnEnd,
    ) -> None:
        if not self.ended:
            self._outbox.put(msg, self._turn.topic)

    def start(self) -> None:
        self._put(TurnStart(turn=self._turn.id, reply_to=self._turn.request_id))

    def status(self, state: Literal["thinking", "tool", "writing"]) -> None:
        self._put(TurnStatus(state=state, turn=self._turn.id, reply_to=self._turn.request_id))

    def delta(self, text: str) -> None:
        self._put(TurnDelta(text=text, turn=self._turn.id, reply_to=self._turn.request_id))

    def tool_call(self, call_id: str, name: str, arguments: JsonValue | None) -> None:
        self._put(
            TurnToolCall(
                call_id=call_id,
                name=name,
                arguments=arguments,
                turn=self._turn.id,
                reply_to=self._turn.request_id,
            )
        )

    def tool_result(self, call_id: str, status: ToolStatus, output: str | None) -> None:
        self._put(
            TurnToolResult(
                call_id=call_id,
                status=status,
                output=output,
                turn=self._turn.id,
                reply_to=self._turn.request_id,
            )
        )

    def reply(self, text: str) -> None:
        self._put(TurnReply(text=text, turn=self._turn.id, reply_to=self._turn.request_id))

    def end(
        self,
        status: TurnEndStatus,
        *,
        reason: str | None = None,
        usage: Usage | None = None,
        error: ErrorInfo | None = None,
    ) -> None:
        self._put(
            TurnEnd(
                status=status,
                reason=reason,
                usage=usage,
                error=error,
                turn=self._turn.id,
                reply_to=self._turn.request_id,
            )
        )
        self.ended = True


class DeltaCoalescer:
    """First text goes out at once; later text is batched by time and size."""

    def __init__(self, emit: TurnEmitter, *, interval: float, max_chars: int) -> None:
        self._emit = emit
        self._interval = interval
        self._max = max_chars
        self._buf = ""
        self._sent_any = False
        self._timer: asyncio.TimerHandle | None = None

    def push(self, text: str) -> None:
        self._buf += text
        if not self._sent_any or self._interval <= 0 or len(self._buf) >= self._max:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._buf:
            piece, self._buf = self._buf[: self._max], self._buf[self._max :]
            self._emit.delta(piece)
            self._sent_any = True
