"""Bytes <-> typed messages. Validation happens here, at the edge; everything inward is typed."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Peek:
    id: str | None
    of: str | None  # a chunk frame's message id


def peek(data: bytes | str) -> Peek:
    """The ids of a packet that is refused without being decoded (floods). Never raises."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):  # every json.loads failure is one of these
        return Peek(None, None)
    if not isinstance(obj, dict):
        return Peek(None, None)
    of = _valid_id(obj.get("of")) if obj.get("type") == "chunk" else None
    return Peek(_valid_id(obj.get("id")), of)


def peek_id(data: bytes | str | dict[str, Any]) -> str | None:
    """The message id, if it has a valid one: for `reply_to` on errors, and for packets
    that are refused without being decoded (floods). Never raises."""
    return _valid_id(data.get("id")) if isinstance(data, dict) else peek(data).id


def _valid_id(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= 64 and _encodable(value):
        return value
    return None


def _encodable(text: str) -> bool:
    """False for text with a lone surrogate (`"\\ud800"` in JSON): it has no UTF-8
    form, so it can be neither stored, logged safely nor sent back in `reply_to`."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _parse(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidJson("packet is not valid UTF-8 JSON") from None
    except RecursionError:
        raise InvalidMessage("packet is nested too deeply") from None
    except ValueError:  # an integer past Python's int-conversion limit (4300 digits)
        raise InvalidMessage("packet holds a number too large to read") from None


def _check_unicode(obj: dict[str, Any], reply_to: str | None) -> None:
    """Every string must be valid Unicode. A chunk frame's `data` is exempt: a client
    may cut its text between the two halves of a surrogate pair (the joined message is
    checked instead)."""
    body = {k: v for k, v in obj.items() if k != "data"} if obj.get("type") == "chunk" else obj
    if not _encodable(json.dumps(body, ensure_ascii=False)):
        raise InvalidMessage(
            "strings must be valid Unicode (a lone surrogate such as \\ud800 is not)",
            reply_to=reply_to,
        )


def decode(data: bytes | str, *, max_bytes: int) -> ClientMessage:
    """Parse and validate one client message, or raise a BotError that names its id.

    Never raises anything else: hostile bytes get `invalid_json` or `invalid_message`."""
    obj = _parse(data)
    if not isinstance(obj, dict):
        raise InvalidMessage("packet must be a JSON object")
    reply_to = peek_id(obj)
    # In bytes only a \\u escape can carry a lone surrogate (invalid UTF-8 fails above);
    # text (a reassembled chunked message) may hold one as is.
    if isinstance(data, str) or b"\\u" in data:
        _check_unicode(obj, reply_to)
    size = len(data) if isinstance(data, bytes) else len(data.encode(errors="surrogatepass"))
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
    except (RecursionError, ValueError):
        raise InvalidMessage("message does not match the protocol", reply_to=reply_to) from None


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
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    if not _encodable(text):
        # a lone surrogate (from a model, a tool): ASCII escapes keep the packet valid UTF-8
        text = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    return text


def parse_bot_message(data: bytes | str) -> BotMessage:
    """For clients and tests: validate a bot message against the schema."""
    return BOT_ADAPTER.validate_json(data)
