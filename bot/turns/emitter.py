"""One turn's events on the wire, to the one sender the turn belongs to."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import JsonValue

from ..protocol.outbound import (
    ErrorInfo,
    ToolApprovalRequest,
    ToolCall,
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
from ..state.outbox import Outbox
from .turn import Turn

TurnEvent = (
    TurnStart
    | TurnStatus
    | TurnDelta
    | TurnToolCall
    | TurnToolResult
    | ToolCall
    | ToolApprovalRequest
    | TurnReply
    | TurnEnd
)


class TurnEmitter:
    """Sends one turn's events; guarantees at most one `turn.end`."""

    def __init__(self, outbox: Outbox, turn: Turn) -> None:
        self._outbox = outbox
        self._turn = turn
        self.ended = False
        self._thinking: asyncio.TimerHandle | None = None

    def _put(self, event: type[TurnEvent], **fields: Any) -> None:
        """Every event of the turn names it and answers its chat.message."""
        if not self.ended:
            msg = event(turn=self._turn.id, reply_to=self._turn.request_id, **fields)
            self._outbox.put(msg, self._turn.topic)

    def start(self) -> None:
        self._put(TurnStart)

    def status(self, state: Literal["thinking", "tool", "writing", "awaiting_approval"]) -> None:
        self._put(TurnStatus, state=state)

    def thinking_unless_answered(self, after_s: float) -> None:
        """`turn.status thinking` at a turn's start, unless the model answers (text or a
        tool call: `answered`) within `after_s` (0: at once). `turn.start` already says
        the model is being asked; the status is for clients that show typing on it alone,
        once the wait is long enough to be seen. A fast answer saves a packet, and the
        first delta's place behind it in the room's publishing queue."""
        if after_s <= 0:
            self.status("thinking")
        else:
            loop = asyncio.get_running_loop()
            self._thinking = loop.call_later(after_s, self.status, "thinking")

    def answered(self) -> None:
        """The model answered: a `thinking` not sent yet is not sent."""
        if self._thinking is not None:
            self._thinking.cancel()
            self._thinking = None

    def delta(self, text: str) -> None:
        self._put(TurnDelta, text=text)

    def tool_call(self, call_id: str, name: str, arguments: JsonValue | None) -> None:
        self._put(TurnToolCall, call_id=call_id, name=name, arguments=arguments)

    def client_call(self, call_id: str, name: str, arguments: JsonValue) -> None:
        """`tool.call`: the client runs this one (v1.1)."""
        self._put(ToolCall, call_id=call_id, name=name, arguments=arguments)

    def approval_request(
        self, call_id: str, name: str, arguments: JsonValue, expires_at: int
    ) -> None:
        """`tool.approval_request`: the user says whether this call may run (v1.1)."""
        self._put(
            ToolApprovalRequest,
            call_id=call_id,
            name=name,
            arguments=arguments,
            expires_at=expires_at,
        )

    def tool_result(self, call_id: str, status: ToolStatus, output: str | None) -> None:
        self._put(TurnToolResult, call_id=call_id, status=status, output=output)

    def reply(self, text: str) -> None:
        self._put(TurnReply, text=text)

    def end(
        self,
        status: TurnEndStatus,
        *,
        reason: str | None = None,
        usage: Usage | None = None,
        error: ErrorInfo | None = None,
    ) -> None:
        self.answered()
        try:
            self._put(TurnEnd, status=status, reason=reason, usage=usage, error=error)
        finally:
            self.ended = True
