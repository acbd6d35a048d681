"""An attribute update whose answer is lost must not hold the bot's state back.

The Rust SDK listens for the server's answer to an attribute update only after it has
sent it, so an answer that comes back first is dropped and `set_attributes` waits out
the SDK's 5 s timeout, although the server applied the update. Seen in
`tests/e2e/test_lk_chat.py`: `lk.agent.state` stuck in one update while a whole turn
went by (`thinking` and `speaking` never published)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from livekit import rtc

from bot.room import options
from bot.room.rtc_transport import RoomTransport

BOUND = 10.0  # bounds the test; never reached when it passes


class LosingParticipant:
    """A local participant whose first `lose` updates are applied but never answered."""

    def __init__(self, lose: int) -> None:
        self.lose = lose
        self.applied: list[dict[str, str]] = []
        self.changed = asyncio.Event()

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        self.applied.append(dict(attributes))
        self.changed.set()
        if self.lose > 0:
            self.lose -= 1
            await asyncio.Event().wait()  # the answer never comes (the SDK: 5 s)


class StandInRoom:
    def __init__(self, participant: LosingParticipant) -> None:
        self.local_participant = participant

    def isconnected(self) -> bool:
        return True


async def _until(p: LosingParticipant, cond: Any) -> None:
    async with asyncio.timeout(BOUND):
        while not cond():
            p.changed.clear()
            await p.changed.wait()


async def test_a_lost_answer_is_waited_for_only_so_long() -> None:
    p = LosingParticipant(lose=1)
    lp = cast(rtc.LocalParticipant, p)
    assert not await asyncio.wait_for(options.set_attributes(lp, {"a": "1"}), BOUND)
    assert await asyncio.wait_for(options.set_attributes(lp, {"a": "2"}), BOUND)
    assert p.applied == [{"a": "1"}, {"a": "2"}]


async def test_the_agent_state_moves_on_after_a_lost_answer() -> None:
    p = LosingParticipant(lose=1)
    transport = RoomTransport(cast(rtc.Room, StandInRoom(p)), lk_chat_topic="lkbot")
    mirror = transport.mirror
    mirror.state = "thinking"
    transport._want_state("thinking")  # its answer is lost
    await _until(p, lambda: len(p.applied) == 1)
    mirror.state = "speaking"  # wanted while the lost one is in flight: it wins after it
    transport._want_state("speaking")
    # after a lost answer, the last state is sent once more: if the lost update reached
    # the server after a later one, the later one still ends up last
    await _until(p, lambda: len(p.applied) == 3)
    assert [a["lk.agent.state"] for a in p.applied] == ["thinking", "speaking", "speaking"]
    await asyncio.wait_for(transport._state_task, BOUND)  # type: ignore[arg-type]
    assert len(p.applied) == 3
