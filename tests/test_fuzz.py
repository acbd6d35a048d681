"""Hostile packets through the real dispatcher: bytes, invalid UTF-8, lone surrogates,
huge numbers, deep nesting, wrong types, bad chunk frames.

For every packet: exactly one direct answer (`reply_to` its id when it has a readable
one, else null), never `internal_error`, never the input quoted in an error, and the
sender is still served afterwards (a ping behind it is answered)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.protocol.codec import peek_id
from bot.protocol.inbound import CLIENT_TYPES
from bot.protocol.outbound import BotMessage, Error

from .harness import DIRECT
from .rig import Rig, explore, rig_fixture

MARK = "QZX"  # in every hostile string value: must never come back in an error
FIELDS = ["text", "on_busy", "metadata", "turn", "limit", "before", "client", "resume"]
FIELDS += ["of", "n", "total", "data"]

marked = st.text(max_size=12).map(lambda s: MARK + s)
nasty = st.sampled_from([MARK + "\ud800", "\udfff" + MARK, MARK * 30, MARK + "\x00\u2028"])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), marked, nasty
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(marked, inner, max_size=3),
    max_leaves=8,
)
ids = st.one_of(
    st.text(min_size=1, max_size=10).map(lambda s: MARK + s),
    nasty,
    st.just(""),
    st.just("x" * 65),
    st.integers(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
types = st.one_of(st.sampled_from(sorted(CLIENT_TYPES - {"chunk"})), marked)
versions = st.one_of(st.just(1), st.just(1), st.integers(), st.booleans(), marked, st.floats())


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    body: dict[str, Any] = {}
    for key, strat in (("v", versions), ("type", types), ("id", ids)):
        if draw(st.integers(0, 9)):  # usually present
            body[key] = draw(strat)
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        body[key] = draw(values)
    if draw(st.booleans()):
        body[draw(st.sampled_from(["extra", "x", "v2"]))] = draw(values)
    # ensure_ascii: lone surrogates travel as \\ud800 escapes, which is valid JSON
    return json.dumps(body, ensure_ascii=draw(st.booleans()) or _has_surrogate(body)).encode()


def _has_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


raw = st.one_of(
    st.binary(max_size=64),
    st.binary(max_size=16).map(lambda b: b"\xff" + b + b'{"v":1}'),
    st.integers(4301, 6000).map(lambda n: b'{"v":1,"type":"ping","id":"a","x":' + b"9" * n + b"}"),
    st.integers(900, 3000).map(lambda n: b'{"v":1,"type":"ping","id":"a","x":' + b"[" * n),
    st.integers(900, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from(
        [b"", b"null", b"[]", b'"x"', b"1e999", b'{"v":1,"type":"ping","id":"ab\\ud800"}']
    ),
)
packets = st.one_of(envelopes(), raw)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    yield from rig_fixture(rate_burst=1000)


_senders = itertools.count()


async def _one(rig: Rig, packet: bytes) -> list[BotMessage]:
    _, transport = rig.transport_bot
    who = f"fuzz{next(_senders)}"
    transport.inject(who, packet)
    transport.inject(who, {"v": 1, "type": "ping", "id": "barrier"})
    msgs = await transport.wait_for(
        who, lambda ms: any(m.reply_to == "barrier" for m in ms if m.type == "pong"), 30
    )
    return [m for m in msgs if m.type in DIRECT and m.reply_to != "barrier"]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@explore(400)
@given(packets)
def test_hostile_packets_get_one_clear_answer(rig: Rig, packet: bytes) -> None:
    answers = rig.run(_one(rig, packet))
    assert len(answers) == 1, answers
    answer = answers[0]
    assert answer.reply_to == peek_id(packet)  # its id when readable, else null
    if isinstance(answer, Error):
        assert answer.code != "internal_error"
        texts = [answer.message] + [d.msg for d in answer.details or []]
        assert not any(MARK in t for t in texts), texts


@st.composite
def frames(draw: st.DrawFn) -> list[bytes]:
    """A chunked message gone wrong: frames with wrong n/total/data, mixed `of`s."""
    out = []
    for _ in range(draw(st.integers(1, 6))):
        frame: dict[str, Any] = {"v": 1, "type": "chunk", "id": f"f{draw(st.integers(0, 99))}"}
        frame["of"] = draw(st.sampled_from(["m1", "m2", "m3", "m4", "m5", "m6"]))
        frame["n"] = draw(st.integers(-1, 4))
        frame["total"] = draw(st.integers(0, 4))
        frame["data"] = draw(st.one_of(st.text(max_size=20), nasty, st.just('{"v":1,')))
        if draw(st.integers(0, 5)) == 0:
            frame[draw(st.sampled_from(["n", "total", "data", "of"]))] = draw(values)
        out.append(json.dumps(frame, ensure_ascii=True).encode())
    return out


async def _frames(rig: Rig, sent: list[bytes]) -> list[BotMessage]:
    _, transport = rig.transport_bot
    who = f"fuzz{next(_senders)}"
    for packet in sent:
        transport.inject(who, packet)
    transport.inject(who, {"v": 1, "type": "ping", "id": "barrier"})
    msgs = await transport.wait_for(
        who, lambda ms: any(m.reply_to == "barrier" for m in ms if m.type == "pong"), 30
    )
    return [m for m in msgs if m.type in DIRECT and m.reply_to != "barrier"]


@explore(300)
@given(frames())
def test_bad_chunk_frames_get_at_most_one_answer_per_message(rig: Rig, sent: list[bytes]) -> None:
    answers = rig.run(_frames(rig, sent))
    assert not any(isinstance(a, Error) and a.code == "internal_error" for a in answers)
    # a message (`of`) is answered once; a frame that is not even a frame, once itself
    by_reply = [a.reply_to for a in answers if a.reply_to in {"m1", "m2", "m3", "m4", "m5", "m6"}]
    assert len(by_reply) == len(set(by_reply)), answers
    assert len(answers) <= len(sent)
