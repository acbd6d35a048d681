"""Bot -> client messages.

Every one carries the envelope (`v`, `type`, `id`) plus `seq` and `ts`, which the
outbox stamps when it sends; `reply_to` is always present (null when the message
answers nothing that could be identified, e.g. invalid JSON).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from .errors import ErrorCode


class _Outbound(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerEnvelope(_Outbound):
    v: Literal[1] = 1
    id: str = ""
    seq: int = 0
    ts: int = 0
    reply_to: str | None = None


class TurnEnvelope(ServerEnvelope):
    turn: str


class Limits(_Outbound):
    max_packet: int
    max_text_chars: int
    max_message_bytes: int
    max_queue: int
    rate_burst: int
    rate_per_second: float
    history_max_items: int


class ToolInfo(_Outbound):
    name: str
    description: str


class SessionReady(ServerEnvelope):
    type: Literal["session.ready"] = "session.ready"
    protocol: str
    features: list[str]
    limits: Limits
    tools: list[ToolInfo]


AckStatus = Literal["accepted", "queued", "duplicate", "cancelled", "noop", "reset"]


class Ack(ServerEnvelope):
    type: Literal["ack"] = "ack"
    status: AckStatus
    turn: str | None = None


class ErrorDetail(_Outbound):
    loc: list[str | int]
    msg: str


class Error(ServerEnvelope):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    retryable: bool
    details: list[ErrorDetail] | None = None
    retry_after_ms: int | None = None


class ErrorInfo(_Outbound):
    code: ErrorCode
    message: str
    retryable: bool


class Usage(_Outbound):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class TurnStart(TurnEnvelope):
    type: Literal["turn.start"] = "turn.start"


class TurnStatus(TurnEnvelope):
    type: Literal["turn.status"] = "turn.status"
    state: Literal["thinking", "tool", "writing"]


class TurnDelta(TurnEnvelope):
    type: Literal["turn.delta"] = "turn.delta"
    text: str


class TurnToolCall(TurnEnvelope):
    type: Literal["turn.tool_call"] = "turn.tool_call"
    call_id: str
    name: str
    arguments: JsonValue | None = None


ToolStatus = Literal["ok", "error", "timeout", "cancelled"]


class TurnToolResult(TurnEnvelope):
    type: Literal["turn.tool_result"] = "turn.tool_result"
    call_id: str
    status: ToolStatus
    output: str | None = None


class TurnReply(TurnEnvelope):
    type: Literal["turn.reply"] = "turn.reply"
    text: str


TurnEndStatus = Literal["completed", "cancelled", "failed"]


class TurnEnd(TurnEnvelope):
    type: Literal["turn.end"] = "turn.end"
    status: TurnEndStatus
    reason: str | None = None
    usage: Usage | None = None
    error: ErrorInfo | None = None


class HistoryItem(_Outbound):
    role: Literal["user", "assistant"]
    text: str
    ts: int
    turn: str


class HistoryPage(ServerEnvelope):
    type: Literal["history.page"] = "history.page"
    items: list[HistoryItem]
    more: bool


class Pong(ServerEnvelope):
    type: Literal["pong"] = "pong"


class Chunk(_Outbound):
    """A frame of a message whose JSON exceeds max_packet. Frames carry no `seq`:
    the reassembled message has its own, and a message's frames are never
    interleaved with other traffic to the same recipient."""

    v: Literal[1] = 1
    type: Literal["chunk"] = "chunk"
    id: str
    of: str
    n: Annotated[int, Field(ge=1)]
    total: Annotated[int, Field(ge=1)]
    data: str


ServerMessage = Annotated[
    SessionReady
    | Ack
    | Error
    | TurnStart
    | TurnStatus
    | TurnDelta
    | TurnToolCall
    | TurnToolResult
    | TurnReply
    | TurnEnd
    | HistoryPage
    | Pong
    | Chunk,
    Field(discriminator="type"),
]
SERVER_ADAPTER: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)
