"""PublishLane: a packet that can wait is handed over only while fewer than `window`
of the room's packets are unanswered; the rest goes at once; nothing waits forever
(hypothesis over any order of submits, answers and waits)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.room.lane import PublishLane


class Ffi:
    """livekit-ffi's side: takes packets, answers them when told."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.unanswered: list[asyncio.Future[None]] = []

    def publish(self, identity: str, topic: str, payload: str) -> asyncio.Future[None]:
        self.taken.append(payload)
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.unanswered.append(answer)
        return answer

    def answer_oldest(self) -> None:
        self.unanswered.pop(0).set_result(None)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_what_can_wait_waits_for_a_quiet_room_and_the_rest_does_not() -> None:
    ffi = Ffi()
    lane = PublishLane(ffi.publish, window=2)

    async def flood_answer(n: int) -> None:  # an outbox's pump, for a seq-0 answer
        await lane.quiet()
        lane.submit("flooder", "t", f"rate_limited {n}")

    for n in range(2):
        await flood_answer(n)  # under the window: at once
    waiting = asyncio.create_task(flood_answer(2))
    await settle()
    assert ffi.taken == ["rate_limited 0", "rate_limited 1"]  # two unanswered: it waits
    lane.submit("ann", "t", "turn.delta")  # another user's packet does not wait
    assert ffi.taken[-1] == "turn.delta" and lane.unanswered == 3
    ffi.answer_oldest()
    await settle()
    assert not waiting.done()  # still two unanswered
    ffi.answer_oldest()
    await settle()
    assert waiting.done() and ffi.taken[-1] == "rate_limited 2"


async def test_a_cancelled_waiter_leaves_the_others_waiting_and_woken() -> None:
    ffi = Ffi()
    lane = PublishLane(ffi.publish, window=1)
    lane.submit("ann", "t", "x")
    first = asyncio.create_task(lane.quiet())
    second = asyncio.create_task(lane.quiet())
    await settle()
    first.cancel()
    await settle()
    assert not second.done()
    ffi.answer_oldest()
    await settle()
    assert second.done() and not second.cancelled()


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=1, max_value=4),
    st.lists(st.sampled_from(["urgent", "later", "answer"]), max_size=40),
)
def test_every_packet_goes_out_and_waiters_never_see_a_busy_room(
    window: int, steps: list[str]
) -> None:
    async def run() -> None:
        ffi = Ffi()
        lane = PublishLane(ffi.publish, window=window)
        handed: list[str] = []
        waiters: list[asyncio.Task[None]] = []

        async def later(name: str) -> None:
            await lane.quiet()
            # woken ones may all pass at once (each looks again): at most one more
            # than the window each, never a room that was busy when it looked
            assert lane.unanswered < window + len(waiters)
            lane.submit("flooder", "t", name)
            handed.append(name)

        for i, step in enumerate(steps):
            if step == "urgent":
                lane.submit("ann", "t", f"u{i}")
            elif step == "later":
                waiters.append(asyncio.create_task(later(f"l{i}")))
            elif ffi.unanswered:
                ffi.answer_oldest()
            await asyncio.sleep(0)
        while ffi.unanswered or not all(w.done() for w in waiters):
            if ffi.unanswered:
                ffi.answer_oldest()
            await settle()
        await asyncio.gather(*waiters)
        assert sorted(handed) == sorted(f"l{i}" for i, s in enumerate(steps) if s == "later")
        assert lane.unanswered == 0

    asyncio.run(asyncio.wait_for(run(), 10))
