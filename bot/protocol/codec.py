"""Bytes <-> typed messages. Validation happens here, at the edge; everything inward is typed."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from .errors import (
    InvalidJson,
    InvalidMessage,
    PayloadTooLarge,
    UnknownType,
    UnsupportedVersion,
)
from .inbound import CLIENT_ADAPTER, CLIENT_TYPES, ClientMessage
from .outbound import BOT_ADAPTER, BotEnvelope, BotMessage, Chunk, ErrorDetail
from .version import PROTOCOL_VERSION


def peek_id(data: bytes | str | dict[str, Any]) -> str | None:
    """The message id, if it has a valid one: for `reply_to` on errors, and for packets
    that are refused without being decoded (floods)."""
    if not isinstance(data, dict):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict):
            return None
    value = data.get("id")
    if isinstance(value, str) and 0 < len(value) <= 64:
        return value
    return None


def decode(data: bytes | str, *, max_bytes: int) -> ClientMessage:
    """Parse and validate one client message, or raise a BotError that names its id."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidJson("packet is not valid UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise InvalidMessage("packet must be a JSON object")
    reply_to = peek_id(obj)
    size = len(data.encode() if isinstance(data, str) else data)
    if size > max_bytes:
        raise PayloadTooLarge(
            f"message is {size} bytes; the limit is {max_bytes} (send chunk frames)",
            reply_to=reply_to,
        )
    if "v" not in obj:
        raise InvalidMessage("missing protocol version `v`", reply_to=reply_to)
    version = obj["v"]
    # bool is an int in Python: `true` must not pass for version 1.
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise UnsupportedVersion(
            f"this protocol version is not supported; this bot speaks v{PROTOCOL_VERSION}",
            reply_to=reply_to,
        )
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise InvalidMessage("missing message `type`", reply_to=reply_to)
    if kind not in CLIENT_TYPES:
        # the known types, never the client's own `type` (errors do not echo input)
        raise UnknownType(
            f"unknown message type; this bot understands {', '.join(sorted(CLIENT_TYPES))}",
            reply_to=reply_to,
        )
    try:
        return CLIENT_ADAPTER.validate_python(obj)
    except ValidationError as e:
        raise InvalidMessage(
            "message does not match the protocol",
            reply_to=reply_to,
            details=validation_details(e),
        ) from None


def validation_details(e: ValidationError) -> list[ErrorDetail]:
    # loc and msg only: the client's input is never echoed back.
    return [
        ErrorDetail(loc=[p for p in err["loc"] if isinstance(p, str | int)], msg=err["msg"])
        for err in e.errors(include_url=False, include_input=False, include_context=False)
    ]


def encode(msg: BotEnvelope | Chunk) -> str:
    """Compact JSON text of a bot message or frame; `reply_to` is always present."""
    body = msg.model_dump(mode="json", exclude_none=True)
    if not isinstance(msg, Chunk):
        body.setdefault("reply_to", None)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def parse_bot_message(data: bytes | str) -> BotMessage:
    """For clients and tests: validate a bot message against the schema."""
    return BOT_ADAPTER.validate_json(data)
