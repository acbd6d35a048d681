"""Bot -> client messages.

Every one carries the envelope (`v`, `type`, `id`) plus `seq` and `ts`, which the
bot's outbox stamps when it sends (handlers build messages without them); `reply_to`
is always present (null when the message answers nothing that could be identified,
e.g. invalid JSON). The published JSON Schema marks all of them required: that is what
the wire guarantees, whatever placeholder a model holds before it is stamped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from .codes import ErrorCode

# Sent on every bot message that has them (chunk frames have no seq/ts/reply_to).
ALWAYS_SENT = ("v", "type", "id", "seq", "ts", "reply_to")


def _always_sent_required(schema: dict[str, Any]) -> None:
    props: dict[str, Any] = schema.get("properties", {})
    required: list[str] = list(schema.get("required", []))
    for name in ALWAYS_SENT:
        if name in props:
            props[name].pop("default", None)  # a placeholder until stamped, never sent
            if name not in required:
                required.append(name)
    if required:
        schema["required"] = required


class _Outbound(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_always_sent_required)


class BotEnvelope(_Outbound):
    v: Literal[1] = 1  # PROTOCOL_VERSION (a test holds them equal)
    id: str = ""
    seq: int = 0
    ts: int = 0
    reply_to: str | None = None


class TurnEnvelope(BotEnvelope):
    turn: str


class Limits(_Outbound):
    max_packet: int
    max_text_chars: int
    max_message_bytes: int
    max_queue: int
    rate_burst: int
    rate_per_second: float
    history_max_items: int
    # v1.1, client tools: how long the bot waits for a `tool.result`, how many tools a
    # hello may declare, how large a declared tool (as JSON) and a result may be
    tool_result_timeout_ms: int | None = None
    max_client_tools: int | None = None
    max_tool_schema_bytes: int | None = None
    max_tool_result_bytes: int | None = None


ToolSource = Literal["server", "mcp", "client"]


class ToolInfo(_Outbound):
    name: str
    description: str
    source: ToolSource = "server"
    approval: bool = False


class SessionReady(BotEnvelope):
    type: Literal["session.ready"] = "session.ready"
    protocol: str
    features: list[str]
    limits: Limits
    tools: list[ToolInfo]


AckStatus = Literal["accepted", "queued", "duplicate", "cancelled", "noop", "reset"]


class Ack(BotEnvelope):
    type: Literal["ack"] = "ack"
    status: AckStatus
    turn: str | None = None


class ErrorDetail(_Outbound):
    loc: list[str | int]
    msg: str


class Error(BotEnvelope):
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
    state: Literal["thinking", "tool", "writing", "awaiting_approval"]


class TurnDelta(TurnEnvelope):
    type: Literal["turn.delta"] = "turn.delta"
    text: str


class TurnToolCall(TurnEnvelope):
    type: Literal["turn.tool_call"] = "turn.tool_call"
    call_id: str
    name: str
    arguments: JsonValue | None = None


ToolStatus = Literal["ok", "error", "timeout", "cancelled", "denied", "expired"]


class ToolApprovalRequest(TurnEnvelope):
    """v1.1: the model called a tool that needs this user's consent: answer
    `tool.approve` before `expires_at` (ms since the epoch)."""

    type: Literal["tool.approval_request"] = "tool.approval_request"
    call_id: str
    name: str
    arguments: JsonValue = None
    expires_at: int


class ToolCall(TurnEnvelope):
    """v1.1: the model called one of this client's tools: run it, answer `tool.result`."""

    type: Literal["tool.call"] = "tool.call"
    call_id: str
    name: str
    arguments: JsonValue = None


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
    # the `metadata` of the chat.message, on its user item (left out when there was none)
    metadata: dict[str, JsonValue] | None = None


class HistoryPage(BotEnvelope):
    type: Literal["history.page"] = "history.page"
    items: list[HistoryItem]
    more: bool


class Pong(BotEnvelope):
    type: Literal["pong"] = "pong"


class Chunk(_Outbound):
    """A frame of a message whose JSON exceeds max_packet. Frames carry no `seq`:
    the reassembled message has its own, and a message's frames are never
    interleaved with other traffic to the same recipient."""

    v: Literal[1] = 1  # PROTOCOL_VERSION
    type: Literal["chunk"] = "chunk"
    id: str
    of: str
    n: Annotated[int, Field(ge=1)]
    total: Annotated[int, Field(ge=1)]
    data: str


BotMessage = Annotated[
    SessionReady
    | Ack
    | Error
    | TurnStart
    | TurnStatus
    | TurnDelta
    | TurnToolCall
    | TurnToolResult
    | ToolCall
    | ToolApprovalRequest
    | TurnReply
    | TurnEnd
    | HistoryPage
    | Pong
    | Chunk,
    Field(discriminator="type"),
]
BOT_ADAPTER: TypeAdapter[BotMessage] = TypeAdapter(BotMessage)
