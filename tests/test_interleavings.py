"""Random interleavings of message / retry / cancel / interrupt / leave / shutdown,
with random event-loop yields between packets, through the real dispatcher and turn
engine (real HTTP to the scripted LLM) on the in-memory transport. After each run the
protocol's invariants 1, 2, 5 and 6 must hold for every sender still in the room."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.dispatcher import Dispatcher
from bot.protocol.outbound import Ack, BotMessage
from bot.testing.memory import MemoryTransport

from .harness import DIRECT, script
from .rig import Rig, explore, rig_fixture

SENDERS = 2
REPLIES = {
    "say": script(say="hello there"),
    "slow": script(say="slow one", delay=0.02),
    "fail": script(status=500),
    "tool": script(tool="echo", args={"text": "x"}, then="done"),
}

slot = st.integers(0, SENDERS - 1)
step = st.one_of(
    st.tuples(
        st.just("chat"),
        slot,
        st.sampled_from(["queue", "queue", "interrupt", "reject"]),
        st.sampled_from(sorted(REPLIES)),
    ),
    st.tuples(st.just("retry"), slot, st.integers(0, 5)),
    st.tuples(st.just("cancel"), slot, st.integers(-1, 5)),
    st.tuples(st.just("ping"), slot),
    st.tuples(st.just("leave"), slot),
)
# The racy shapes, on purpose: something right behind a message, a few yields later
# (one yield put the old queue's cancel between a turn's task and its first step).
burst = st.tuples(
    st.just("burst"),
    slot,
    st.sampled_from(["cancel", "interrupt", "leave", "chat"]),
    st.sampled_from(sorted(REPLIES)),
    st.sampled_from([0, 1, 1, 2, 3]),
)
# (step, event-loop yields after it, sometimes a real pause so HTTP moves on)
paced = st.tuples(
    st.one_of(step, burst, burst),
    st.sampled_from([0, 1, 2, 3, 6]),
    st.sampled_from([0, 0, 0.002, 0.01]),
)
scenarios = st.tuples(st.lists(paced, min_size=2, max_size=12), st.booleans())


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    yield from rig_fixture(rate_burst=10_000, max_queue=3, llm_timeout=20)


@dataclass
class Run:
    transport: MemoryTransport
    epochs: list[int] = field(default_factory=lambda: [0] * SENDERS)
    left: set[str] = field(default_factory=set)
    sent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=itertools.count)

    def who(self, slot: int) -> str:
        return f"s{slot}.{self.epochs[slot]}"

    def send(self, who: str, body: dict[str, Any]) -> None:
        body = {"v": 1, "id": body.get("id") or f"m{next(self.ids)}", **body}
        self.sent.setdefault(who, []).append(body)
        self.transport.inject(who, body)

    def leave(self, dispatcher: Dispatcher, slot: int) -> None:
        who = self.who(slot)
        dispatcher.on_participant_left(who)
        self.left.add(who)
        self.epochs[slot] += 1

    def turns(self, who: str) -> list[str]:
        msgs = self.transport.messages(who)
        return [
            m.turn
            for m in msgs
            if isinstance(m, Ack) and m.turn and m.status in ("accepted", "queued", "duplicate")
        ]


async def _scenario(rig: Rig, steps: list[Any], shutdown: bool) -> None:
    dispatcher, transport = rig.bot()
    run = Run(transport)
    for (kind, slot, *args), yields, pause in steps:
        who = run.who(slot)
        if kind == "chat":
            on_busy, reply = args
            run.send(who, {"type": "chat.message", "text": REPLIES[reply], "on_busy": on_busy})
        elif kind == "retry":
            chats = [b for b in run.sent.get(who, []) if b["type"] == "chat.message"]
            if chats:
                run.send(who, chats[args[0] % len(chats)])
        elif kind == "cancel":
            turns = run.turns(who)
            pick = args[0]
            target = turns[pick % len(turns)] if pick >= 0 and turns else None
            run.send(who, {"type": "chat.cancel", **({"turn": target} if target else {})})
        elif kind == "ping":
            run.send(who, {"type": "ping"})
        elif kind == "leave":
            run.leave(dispatcher, slot)
        elif kind == "burst":
            follow, reply, between = args
            run.send(who, {"type": "chat.message", "text": REPLIES[reply]})
            for _ in range(between):
                await asyncio.sleep(0)
            if follow == "cancel":
                run.send(who, {"type": "chat.cancel"})
            elif follow == "leave":
                run.leave(dispatcher, slot)
            else:
                on_busy = "interrupt" if follow == "interrupt" else "queue"
                run.send(who, {"type": "chat.message", "text": REPLIES["say"], "on_busy": on_busy})
        for _ in range(yields):
            await asyncio.sleep(0)
        if pause:
            await asyncio.sleep(pause)
    if shutdown:
        await asyncio.wait_for(dispatcher.aclose(timeout=20), 60)
    try:
        for who in run.sent:
            if who not in run.left:
                await transport.wait_for(who, lambda ms, w=who: _settled(run, w, ms), 60)
                check_invariants(run.sent[who], transport.messages(who))
            else:
                check_left(transport.messages(who))
    finally:
        await dispatcher.aclose(timeout=20)


def _settled(run: Run, who: str, msgs: list[BotMessage]) -> bool:
    answered = sum(1 for m in msgs if m.type in DIRECT)
    started = {m.turn for m in msgs if m.type == "turn.start"}  # type: ignore[union-attr]
    ended = {m.turn for m in msgs if m.type == "turn.end"}  # type: ignore[union-attr]
    return answered >= len(run.sent[who]) and set(run.turns(who)) <= ended and started <= ended


def check_invariants(sent: list[dict[str, Any]], msgs: list[BotMessage]) -> None:
    # gap-free seq
    assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1))
    # 1: one direct answer per packet, by id (a retried id is a packet of its own)
    direct = [m for m in msgs if m.type in DIRECT]
    for msg_id in {b["id"] for b in sent}:
        packets = sum(1 for b in sent if b["id"] == msg_id)
        assert sum(1 for m in direct if m.reply_to == msg_id) == packets, msg_id
    assert len(direct) == len(sent)
    # 5: a retried id never starts a second turn
    started_by = [
        m.reply_to for m in msgs if isinstance(m, Ack) and m.status in ("accepted", "queued")
    ]
    assert len(started_by) == len(set(started_by))
    acks = [m for m in msgs if isinstance(m, Ack) and m.status in ("accepted", "queued")]
    turns = [a.turn for a in acks]
    # 2: one start, one end, in order, everything between; 6: one at a time, in order
    edges = [(m.type, m.turn) for m in msgs if m.type in ("turn.start", "turn.end")]  # type: ignore[union-attr]
    assert edges == [(k, t) for t in turns for k in ("turn.start", "turn.end")], edges
    for ack in acks:
        events = [i for i, m in enumerate(msgs) if getattr(m, "turn", None) == ack.turn]
        start = next(i for i, m in enumerate(msgs) if m.type == "turn.start" and m.turn == ack.turn)  # type: ignore[union-attr]
        end = next(i for i, m in enumerate(msgs) if m.type == "turn.end" and m.turn == ack.turn)  # type: ignore[union-attr]
        assert msgs.index(ack) < start < end
        assert all(start <= i <= end for i in events if msgs[i].type.startswith("turn."))


def check_left(msgs: list[BotMessage]) -> None:
    """A sender who left is sent nothing more: what did arrive is still well-formed."""
    assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1))
    starts = [m.turn for m in msgs if m.type == "turn.start"]  # type: ignore[union-attr]
    ends = [m.turn for m in msgs if m.type == "turn.end"]  # type: ignore[union-attr]
    assert len(starts) == len(set(starts)) and len(ends) == len(set(ends))
    assert set(ends) <= set(starts)


@explore(200)
@given(scenarios)
def test_every_accepted_turn_ends_whatever_the_interleaving(rig: Rig, scenario: Any) -> None:
    steps, shutdown = scenario
    rig.run(_scenario(rig, steps, shutdown))


def test_the_race_that_lost_turn_ends(rig: Rig) -> None:
    """The case the old queue lost (24 of 400): a cancel right behind the message."""
    for yields in range(6):
        steps = [(("chat", 0, "queue", "slow"), yields, 0), (("cancel", 0, -1), 0, 0)]
        steps += [(("chat", 0, "queue", "say"), 0, 0)]  # and the next one still runs
        rig.run(_scenario(rig, steps, False))
