"""LiveKit chat compatibility, unit level: the legacy packet, ids, and the mirror that
renders turns as `lk.transcription` streams and keeps `lk.agent.state`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bot.protocol.codec import encode
from bot.protocol.outbound import Ack, Error, ErrorInfo, TurnDelta, TurnEnd, TurnStart
from bot.room.lk_chat import (
    FINAL,
    SEGMENT_ID,
    StreamGate,
    StreamLimits,
    StreamTooLarge,
    TranscriptionMirror,
    chat_message,
    legacy_message,
    read_capped,
    request_id,
)


@dataclass
class Writer:
    identity: str
    attributes: dict[str, str]
    text: str = ""
    closed_with: dict[str, str] | None = None
    closed: bool = False

    async def write(self, text: str) -> None:
        assert not self.closed
        self.text += text

    async def aclose(self, *, attributes: dict[str, str] | None = None) -> None:
        self.closed, self.closed_with = True, attributes


@dataclass
class Room:
    writers: list[Writer] = field(default_factory=list)
    states: list[str] = field(default_factory=list)

    async def open(self, identity: str, attributes: dict[str, str]) -> Writer:
        writer = Writer(identity, attributes)
        self.writers.append(writer)
        return writer


def sent(msg: object) -> str:
    return encode(msg)  # type: ignore[arg-type]


def stamp(cls: type, n: int, **fields: object) -> object:
    return cls(id=f"b{n}", seq=n, ts=1, **fields)


def test_the_legacy_packet_is_answered_only_without_ignore_legacy() -> None:
    packet = {"id": "TS_1", "timestamp": 1, "message": "hi"}
    assert legacy_message(json.dumps({**packet, "ignoreLegacy": True}).encode()) is None
    assert legacy_message(json.dumps(packet).encode()) == ("TS_1", "hi")
    for bad in (b"\xff", b"[]", b'{"id": 3, "message": "x"}', b'{"id": "a"}'):
        assert legacy_message(bad) is None


def test_ids_fit_the_protocol_and_a_stream_and_its_legacy_copy_share_one() -> None:
    assert request_id("TS_abc") == "lkchat-TS_abc"
    long = request_id("x" * 200)
    assert len(long) <= 64 and long == request_id("x" * 200) != request_id("y" * 200)
    body = json.loads(chat_message("hello", "TS_abc"))
    assert body == {"v": 1, "type": "chat.message", "id": "lkchat-TS_abc", "text": "hello"}


async def test_a_turn_becomes_one_stream_to_its_sender_closed_as_final() -> None:
    room = Room()
    mirror = TranscriptionMirror(room.open, room.states.append)
    rid = "lkchat-TS_1"
    await mirror.sent("ann", sent(stamp(Ack, 1, status="accepted", turn="t_1", reply_to=rid)))
    await mirror.sent("ann", sent(stamp(TurnStart, 2, turn="t_1", reply_to=rid)))
    assert room.states == ["thinking"]
    for n, text in enumerate(["Hel", "lo"], start=3):
        await mirror.sent("ann", sent(stamp(TurnDelta, n, turn="t_1", reply_to=rid, text=text)))
    assert room.states == ["thinking", "speaking"]
    delta = sent(stamp(TurnDelta, 3, turn="t_1", reply_to=rid, text="Hel"))
    await mirror.sent("ann", delta)  # a replay (resume): not written twice
    await mirror.sent("ann", sent(stamp(TurnEnd, 5, turn="t_1", reply_to=rid, status="completed")))
    [w] = room.writers
    assert (w.identity, w.text, w.closed) == ("ann", "Hello", True)
    assert w.attributes == {SEGMENT_ID: "t_1", FINAL: "false"}
    assert w.closed_with == {SEGMENT_ID: "t_1", FINAL: "true"}
    assert room.states == ["thinking", "speaking", "listening"]


async def test_protocol_turns_neither_move_the_state_nor_are_rendered_and_errors_read() -> None:
    """A protocol client's turn is its own (turn.status, privately): the room-wide
    state follows only the turns of LiveKit chat users, whose UIs show it."""
    room = Room()
    mirror = TranscriptionMirror(room.open, room.states.append)
    await mirror.sent("bob", sent(stamp(TurnStart, 1, turn="t_9", reply_to="c1")))
    await mirror.sent("bob", sent(stamp(TurnDelta, 2, turn="t_9", reply_to="c1", text="x")))
    await mirror.sent("bob", sent(stamp(TurnEnd, 3, turn="t_9", reply_to="c1", status="completed")))
    assert room.writers == [] and room.states == [] and mirror.state == "listening"

    err = stamp(Error, 4, code="busy", message="a turn is running", retryable=True)
    await mirror.sent("cy", sent(err.model_copy(update={"reply_to": "lkchat-TS_2"})))  # type: ignore[attr-defined]
    failed = stamp(
        TurnEnd,
        5,
        turn="t_3",
        reply_to="lkchat-TS_3",
        status="failed",
        error=ErrorInfo(code="llm_unavailable", message="the model is down", retryable=True),
    )
    await mirror.sent("cy", sent(failed))
    assert [(w.text, w.closed) for w in room.writers] == [
        ("[error: a turn is running]", True),
        ("\n[error: the model is down]", True),
    ]


async def test_someone_who_leaves_mid_turn_leaves_nothing_behind() -> None:
    """Nothing is published to someone gone, so no turn.end reaches the relay: without
    `left`, the room stayed `speaking` and the writer open for good."""
    room = Room()
    mirror = TranscriptionMirror(room.open, room.states.append)
    rid = "lkchat-TS_9"
    await mirror.sent("ann", sent(stamp(TurnStart, 1, turn="t_1", reply_to=rid)))
    await mirror.sent("ann", sent(stamp(TurnDelta, 2, turn="t_1", reply_to=rid, text="Hi")))
    await mirror.sent("bob", sent(stamp(TurnStart, 1, turn="t_2", reply_to="lkchat-TS_8")))
    assert mirror.state == "speaking"
    await mirror.left("ann")
    assert mirror.state == "thinking"  # bob's turn still runs
    assert room.writers[0].closed
    await mirror.left("bob")
    assert mirror.state == "listening" and room.states[-1] == "listening"


def test_a_senders_streams_are_charged_when_they_open_and_capped_in_number() -> None:
    gate = StreamGate(StreamLimits(max_open=2, burst=3, per_second=0.001))
    assert gate.admit("ann", "TS_1") is None
    assert gate.admit("ann", "TS_2") is None
    busy = gate.admit("ann", "TS_3")  # a third open stream
    assert busy is not None and busy.code == "busy" and busy.reply_to == "lkchat-TS_3"
    assert gate.admit("bob", "TS_4") is None  # others are not affected
    gate.done("ann")
    limited = gate.admit("ann", "TS_5")  # the burst of 3 was spent at the opens
    assert limited is not None and limited.code == "rate_limited"
    assert gate.open_streams("ann") == 1


async def test_a_stream_is_cut_as_soon_as_it_passes_the_cap() -> None:
    read: list[str] = []

    async def chunks(n: int) -> AsyncIterator[str]:
        for _ in range(n):
            read.append("é" * 100)  # 200 bytes each
            yield read[-1]

    assert await read_capped(chunks(5), 1000) == "é" * 500
    read.clear()
    with pytest.raises(StreamTooLarge):
        await read_capped(chunks(10**6), 1000)
    assert len(read) == 6  # not one chunk more than it took to see it
