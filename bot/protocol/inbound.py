"""Client -> bot messages. Inbound models forbid unknown fields."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

MessageId = Annotated[str, Field(min_length=1, max_length=64)]
ShortText = Annotated[str, Field(max_length=64)]


class _Inbound(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClientEnvelope(_Inbound):
    v: Literal[1]  # PROTOCOL_VERSION (a test holds them equal)
    id: MessageId


class ClientInfo(_Inbound):
    name: ShortText
    version: ShortText | None = None


class Resume(_Inbound):
    last_seq: Annotated[int, Field(ge=0)]


ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _object_schema() -> dict[str, JsonValue]:
    return {"type": "object"}


class ClientTool(_Inbound):
    """A tool the client runs itself (v1.1): the model may call it in this sender's
    turns; the bot sends `tool.call` and waits for `tool.result`."""

    name: ToolName
    description: Annotated[str, Field(max_length=1024)] = ""
    parameters: dict[str, JsonValue] = Field(default_factory=_object_schema)


class SessionHello(ClientEnvelope):
    type: Literal["session.hello"]
    client: ClientInfo | None = None
    resume: Resume | None = None
    # each hello replaces the set (None: keep the one declared before)
    tools: list[ClientTool] | None = None


OnBusy = Literal["queue", "interrupt", "reject"]


class ChatMessage(ClientEnvelope):
    type: Literal["chat.message"]
    # The length limit is configuration (max_text_chars), checked by the handler
    # so that it can answer payload_too_large rather than invalid_message.
    text: Annotated[str, Field(min_length=1)]
    metadata: dict[str, JsonValue] | None = None
    on_busy: OnBusy = "queue"


class ChatCancel(ClientEnvelope):
    type: Literal["chat.cancel"]
    turn: MessageId | None = None


class HistoryGet(ClientEnvelope):
    type: Literal["history.get"]
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    before: MessageId | None = None


class HistoryReset(ClientEnvelope):
    type: Literal["history.reset"]


class Ping(ClientEnvelope):
    type: Literal["ping"]


class ToolFailure(_Inbound):
    message: Annotated[str, Field(max_length=1024)]


class ToolResult(ClientEnvelope):
    """The outcome of a `tool.call` the client ran: `output` (any JSON) or `error`."""

    type: Literal["tool.result"]
    call_id: MessageId
    output: JsonValue = None
    error: ToolFailure | None = None


class ToolApprove(ClientEnvelope):
    type: Literal["tool.approve"]
    call_id: MessageId
    approved: bool
    reason: Annotated[str, Field(max_length=1024)] | None = None


class ChunkFrame(ClientEnvelope):
    """One frame of a message too large for one packet (same framing both ways)."""

    type: Literal["chunk"]
    of: MessageId
    n: Annotated[int, Field(ge=1)]
    total: Annotated[int, Field(ge=1)]
    data: str


ClientMessage = Annotated[
    SessionHello
    | ChatMessage
    | ChatCancel
    | HistoryGet
    | HistoryReset
    | Ping
    | ToolResult
    | ToolApprove
    | ChunkFrame,
    Field(discriminator="type"),
]
CLIENT_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
CLIENT_TYPES: frozenset[str] = frozenset(
    m.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in (
        SessionHello,
        ChatMessage,
        ChatCancel,
        HistoryGet,
        HistoryReset,
        Ping,
        ToolResult,
        ToolApprove,
        ChunkFrame,
    )
)
