from __future__ import annotations

import json

import pytest

from bot.protocol.chunking import Reassembler, split
from bot.protocol.errors import Busy, InvalidMessage, PayloadTooLarge
from bot.protocol.inbound import ChunkFrame

SAMPLES = [
    "a" * 100_000,
    '"\\' * 30_000,  # every character needs escaping
    "\u00e9\u4e2d\U0001f600" * 20_000,  # 2-, 3- and 4-byte UTF-8
    "\x01\x02\n" * 10_000,  # control characters become \u escapes
]


@pytest.mark.parametrize("text", SAMPLES)
@pytest.mark.parametrize("max_packet", [1024, 15000])
def test_frames_fit_and_reassemble_exactly(text: str, max_packet: int) -> None:
    frames = split(text, of="m1", max_packet=max_packet)
    assert len(frames) > 1
    assert all(len(f.encode()) <= max_packet for f in frames)
    parsed = [json.loads(f) for f in frames]
    assert [p["n"] for p in parsed] == list(range(1, len(frames) + 1))
    assert {p["total"] for p in parsed} == {len(frames)}
    assert "".join(p["data"] for p in parsed) == text


def _frame(of: str, n: int, total: int, data: str) -> ChunkFrame:
    return ChunkFrame(v=1, type="chunk", id=f"{of}.{n}", of=of, n=n, total=total, data=data)


def test_reassembler_joins_out_of_order_and_ignores_resent_frames() -> None:
    r = Reassembler(max_bytes=1000)
    assert r.feed(_frame("m", 2, 3, "b")) is None
    assert r.feed(_frame("m", 2, 3, "b")) is None
    assert r.feed(_frame("m", 1, 3, "a")) is None
    assert r.feed(_frame("m", 3, 3, "c")) == "abc"


def test_reassembler_rejects_bad_frames() -> None:
    r = Reassembler(max_bytes=10, max_pending=1)
    with pytest.raises(InvalidMessage):
        r.feed(_frame("a", 4, 3, "x"))
    r.feed(_frame("b", 1, 3, "x"))
    with pytest.raises(InvalidMessage):
        r.feed(_frame("b", 2, 4, "x"))
    r.feed(_frame("c", 1, 3, "x"))
    with pytest.raises(Busy):
        r.feed(_frame("other", 1, 2, "x"))
    with pytest.raises(PayloadTooLarge):
        r.feed(_frame("c", 2, 3, "y" * 20))


def test_a_refused_chunked_message_is_refused_once() -> None:
    """Later frames of a message that got an error are dropped without another one."""
    r = Reassembler(max_bytes=10, max_pending=1)
    r.feed(_frame("m", 1, 3, "x"))
    with pytest.raises(Busy):
        r.feed(_frame("other", 1, 3, "x"))
    assert r.feed(_frame("other", 2, 3, "x")) is None
    assert r.feed(_frame("other", 3, 3, "x")) is None
    with pytest.raises(PayloadTooLarge):
        r.feed(_frame("m", 2, 3, "y" * 20))
    assert r.feed(_frame("m", 3, 3, "z")) is None
    assert r.in_progress("m") and "m" not in r.pending


def test_surrogate_pairs_split_between_frames_are_rejoined() -> None:
    r = Reassembler(max_bytes=100)
    r.feed(_frame("m", 1, 2, "smile \ud83d"))
    assert r.feed(_frame("m", 2, 2, "\ude00!")) == "smile \U0001f600!"


def test_reassembler_expires_stale_messages() -> None:
    r = Reassembler(max_bytes=100, ttl=30)
    r.feed(_frame("m", 1, 2, "x"))
    assert r.expire(now=0) == []
    import time

    assert r.expire(now=time.monotonic() + 31) == ["m"]
    assert r.feed(_frame("m", 2, 2, "y")) is None  # expired: its late frames are dropped


@pytest.mark.parametrize("of_len", [1, 40, 63, 64])
def test_frames_of_a_message_with_a_long_id_are_valid_client_frames(of_len: int) -> None:
    of = "x" * of_len
    frames = split("y" * 50_000, of=of, max_packet=1024)
    assert len(frames) > 9  # two-digit frame numbers too
    parsed = [ChunkFrame.model_validate({**json.loads(f), "v": 1}) for f in frames]
    assert all(f.of == of and len(f.id) <= 64 for f in parsed)
    assert len({f.id for f in parsed}) == len(parsed)


def test_frames_are_bounded_in_number_and_never_empty() -> None:
    """300,000 empty frames of one message held 18.9 MB: `total` is now bounded by what
    max_bytes allows, and a frame without data is refused."""
    r = Reassembler(max_bytes=262144)
    with pytest.raises(PayloadTooLarge, match="frames"):
        r.feed(_frame("huge", 1, 300_000, "x"))
    with pytest.raises(InvalidMessage, match="data"):
        r.feed(_frame("empty", 1, 3, ""))
    assert r.pending == frozenset()
    assert r.max_frames == 262144 // 64 + 4
    # what our own splitter makes at the smallest max_packet still fits
    frames = split("\u0001" * 262000, of="m", max_packet=1024)
    assert len(frames) <= r.max_frames
