from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.protocol.codec import decode, encode, parse_bot_message
from bot.protocol.codes import RETRYABLE, ErrorCode
from bot.protocol.errors import (
    BotError,
    InvalidJson,
    InvalidMessage,
    PayloadTooLarge,
    UnknownType,
    UnsupportedVersion,
)
from bot.protocol.inbound import ChatMessage, HistoryGet, Ping
from bot.protocol.outbound import Ack, Error, TurnEnd

LIMIT = 15000
ROOT = Path(__file__).resolve().parent.parent


def _decode(obj: object) -> object:
    return decode(json.dumps(obj).encode(), max_bytes=LIMIT)


def test_valid_messages_decode_to_their_models() -> None:
    assert isinstance(_decode({"v": 1, "type": "ping", "id": "a"}), Ping)
    chat = _decode({"v": 1, "type": "chat.message", "id": "a", "text": "hi"})
    assert isinstance(chat, ChatMessage)
    assert chat.on_busy == "queue"
    page = _decode({"v": 1, "type": "history.get", "id": "a"})
    assert isinstance(page, HistoryGet)
    assert page.limit == 50


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"", b'{"v":1,'])
def test_invalid_json_has_no_reply_to(raw: bytes) -> None:
    with pytest.raises(InvalidJson) as e:
        decode(raw, max_bytes=LIMIT)
    assert e.value.reply_to is None


@pytest.mark.parametrize("raw", [b"[1,2]", b'"text"', b"42", b"null"])
def test_non_object_json_is_invalid_message(raw: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode(raw, max_bytes=LIMIT)


@pytest.mark.parametrize("version", [2, 0, "1", True, 1.0, None])
def test_other_versions_are_unsupported(version: object) -> None:
    with pytest.raises(UnsupportedVersion) as e:
        _decode({"v": version, "type": "ping", "id": "x"})
    assert e.value.reply_to == "x"


def test_missing_version_is_invalid_message() -> None:
    with pytest.raises(InvalidMessage) as e:
        _decode({"type": "ping", "id": "x"})
    assert e.value.reply_to == "x"


def test_unknown_type() -> None:
    with pytest.raises(UnknownType) as e:
        _decode({"v": 1, "type": "chat.explode", "id": "x"})
    assert e.value.reply_to == "x"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"v": 1, "type": "SECRET-TYPE-VALUE", "id": "x"}, UnknownType),
        ({"v": "SECRET-VERSION-VALUE", "type": "ping", "id": "x"}, UnsupportedVersion),
    ],
)
def test_version_and_type_errors_do_not_echo_input(body: object, error: type[BotError]) -> None:
    with pytest.raises(error) as e:
        _decode(body)
    assert "SECRET" not in e.value.message


def test_wrong_types_name_location_and_never_echo_input() -> None:
    secret = "SECRET-INPUT-VALUE"
    with pytest.raises(InvalidMessage) as e:
        _decode({"v": 1, "type": "history.get", "id": "x", "limit": secret})
    err = e.value
    assert err.reply_to == "x"
    assert err.details is not None
    assert any(d.loc[-1] == "limit" for d in err.details)
    assert secret not in json.dumps([d.model_dump() for d in err.details])
    assert secret not in err.message


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(InvalidMessage) as e:
        _decode({"v": 1, "type": "ping", "id": "x", "identity": "admin"})
    assert e.value.details is not None
    assert e.value.details[0].loc[-1] == "identity"


def test_bad_id_gives_no_reply_to() -> None:
    with pytest.raises(InvalidMessage) as e:
        _decode({"v": 1, "type": "ping", "id": "x" * 65})
    assert e.value.reply_to is None


def test_oversized_packet() -> None:
    body = {"v": 1, "type": "chat.message", "id": "big", "text": "a" * LIMIT}
    with pytest.raises(PayloadTooLarge) as e:
        _decode(body)
    assert e.value.reply_to == "big"


def _documented_retryable() -> dict[str, bool]:
    """The `retryable` column of the error table in docs/protocol.md."""
    table: dict[str, bool] = {}
    for line in (ROOT / "docs" / "protocol.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`") and cells[2] in ("yes", "no"):
            table[cells[0].strip("`")] = cells[2] == "yes"
    return table


def test_every_error_code_is_retryable_exactly_as_documented() -> None:
    documented = _documented_retryable()
    assert set(documented) == {c.value for c in ErrorCode}, "docs/protocol.md error table"
    for code in ErrorCode:
        assert RETRYABLE[code] is documented[code.value], code
    # and each code's exception carries that flag onto the wire
    by_code = {cls.code: cls for cls in BotError.__subclasses__()}
    assert set(by_code) == set(ErrorCode)
    for code, cls in by_code.items():
        assert cls("m").retryable is documented[code.value], code


def test_encode_always_carries_reply_to_and_round_trips() -> None:
    text = encode(Error(code="invalid_json", message="m", retryable=False))  # type: ignore[arg-type]
    assert json.loads(text)["reply_to"] is None
    ack = Ack(status="accepted", turn="t1", reply_to="c1", seq=3, ts=5, id="b3")
    back = parse_bot_message(encode(ack))
    assert back == ack
    end = TurnEnd(turn="t", status="completed", reply_to="c")
    assert "usage" not in json.loads(encode(end))  # optional fields are left out, not null
