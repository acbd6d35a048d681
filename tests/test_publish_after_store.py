"""What a client holds, the store holds: the outbox publishes a message only once the
journal has written it. Otherwise a worker killed (kill -9) between the two leaves the
client with seqs the store never saw, and the next worker hands those seqs out again
for other messages (found by CI: the client got 13 and 14 twice)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.protocol.outbound import Pong
from bot.state.journal import Journal
from bot.state.outbox import Outbox
from bot.store import Changes, ConversationKey, MemoryStore
from bot.transport import Peer

KEY = ConversationKey("r", "alice")
BOUND = 10.0  # bounds the test; never reached when it passes


class SlowStore(MemoryStore):
    """A memory store whose writes take `delays` loop turns each, and that can fail
    (`failing`) or hang (`hanging`)."""

    def __init__(self, delays: list[int] | None = None) -> None:
        super().__init__()
        self.delays = list(delays or [])
        self.seq = 0  # the highest seq written
        self.failing = False
        self.hanging = False
        self.tries = 0
        self.changed = asyncio.Event()  # a write done or a packet sent

    async def apply(self, key: ConversationKey, changes: Changes) -> None:
        self.tries += 1
        for _ in range(self.delays.pop(0) if self.delays else 0):
            await asyncio.sleep(0)
        if self.hanging:
            await asyncio.Event().wait()
        if self.failing:
            raise ConnectionError("store down")
        await super().apply(key, changes)
        self.seq = max(self.seq, changes.seq or 0)
        self.changed.set()


class Recorder:
    """A transport that notes, for each packet, its seq and what the store had then."""

    def __init__(self, store: SlowStore) -> None:
        self.store = store
        self.sent: list[tuple[int, int]] = []  # (seq published, seq stored at that moment)
        self.arrived = asyncio.Event()

    async def send(self, identity: str, topic: str, payload: str) -> None:
        seq = int(payload.split('"seq":')[1].split(",")[0].rstrip("}"))
        self.sent.append((seq, self.store.seq))
        self.arrived.set()
        self.store.changed.set()

    def peers(self) -> list[Peer]:
        return []

    def peer(self, identity: str) -> Peer | None:
        return None


async def _outbox(store: SlowStore, **journal: float) -> tuple[Outbox, Journal, Recorder]:
    transport = Recorder(store)
    j = Journal(store, KEY, **journal)
    await j.claim()
    return Outbox(transport, "alice", max_packet=15_000, journal=j), j, transport


async def _until(store: SlowStore, cond: Callable[[], bool]) -> None:
    async with asyncio.timeout(BOUND):
        while not cond():
            store.changed.clear()
            await store.changed.wait()


@settings(max_examples=60, deadline=None)
@given(
    bursts=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    delays=st.lists(st.integers(0, 5), max_size=20),
    gaps=st.lists(st.integers(0, 4), max_size=6),
)
def test_nothing_is_published_before_it_is_stored(
    bursts: list[int], delays: list[int], gaps: list[int]
) -> None:
    async def run() -> None:
        store = SlowStore(delays)
        outbox, journal, transport = await _outbox(store)
        total = 0
        for i, n in enumerate(bursts):
            for _ in range(n):
                outbox.put(Pong(), "lkbot")
                total += 1
            for _ in range(gaps[i] if i < len(gaps) else 0):
                await asyncio.sleep(0)
        await _until(store, lambda: len(transport.sent) == total)
        assert [seq for seq, _ in transport.sent] == list(range(1, total + 1))
        late = [(seq, stored) for seq, stored in transport.sent if seq > stored]
        assert late == []  # each went out only once the store had it
        await outbox.aclose()
        await journal.aclose()

    asyncio.run(run())


async def test_a_failing_store_does_not_hold_messages_back() -> None:
    """Serving beats waiting: when a write fails, what it held goes out (logged) while the
    journal retries, not after its retries (0.1 + 0.5 + 2 + 5 s)."""
    store = SlowStore()
    store.failing = True
    outbox, journal, transport = await _outbox(store)
    outbox.put(Pong(), "lkbot")
    await asyncio.wait_for(transport.arrived.wait(), BOUND)
    assert store.tries == 1
    outbox.put(Pong(), "lkbot")  # recorded while the first batch waits for its retry
    await _until(store, lambda: len(transport.sent) == 2)
    assert transport.sent == [(1, 0), (2, 0)]
    store.failing = False  # back: the retry writes both, and waiting resumes
    await _until(store, lambda: store.seq == 2)
    store.delays = [3]
    outbox.put(Pong(), "lkbot")
    await _until(store, lambda: len(transport.sent) == 3)
    assert transport.sent[-1] == (3, 3)
    await outbox.aclose()
    await journal.aclose()


async def test_a_hanging_store_holds_messages_back_only_so_long() -> None:
    store = SlowStore()
    store.hanging = True
    outbox, journal, transport = await _outbox(store, publish_wait_s=0.05)
    outbox.put(Pong(), "lkbot")
    await asyncio.wait_for(transport.arrived.wait(), BOUND)
    assert transport.sent == [(1, 0)]
    await outbox.aclose()
    await journal.aclose(timeout=0)


async def test_a_replay_of_stored_messages_does_not_wait() -> None:
    store = SlowStore()
    outbox, journal, transport = await _outbox(store)
    for _ in range(3):
        outbox.put(Pong(), "lkbot")
    await _until(store, lambda: len(transport.sent) == 3)
    store.hanging = True  # from now on nothing more gets written
    assert outbox.replay(0)
    await _until(store, lambda: len(transport.sent) == 6)
    assert [seq for seq, _ in transport.sent] == [1, 2, 3, 1, 2, 3]
    await outbox.aclose()
    await journal.aclose(timeout=0)


class Pipe(Recorder):
    """A transport that takes a packet without waiting for the one before to be
    answered (`submit`, as RoomTransport does over livekit-ffi): answers come when the
    test says, some of them failures."""

    def __init__(self, store: SlowStore) -> None:
        super().__init__(store)
        self.answers: list[asyncio.Future[None]] = []

    def submit(self, identity: str, topic: str, payload: str) -> asyncio.Future[None]:
        seq = int(payload.split('"seq":')[1].split(",")[0].rstrip("}"))
        self.sent.append((seq, self.store.seq))
        self.store.changed.set()
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.answers.append(answer)
        return answer


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 100),
    delays=st.lists(st.integers(0, 5), max_size=20),
    failing=st.sets(st.integers(0, 99)),
)
def test_packets_handed_over_before_answers_keep_their_order_and_the_store_rule(
    n: int, delays: list[int], failing: set[int]
) -> None:
    """Pipelined: each packet goes out once stored, in seq order, without waiting for
    the answers before it (at most IN_FLIGHT unanswered); a failed answer loses only
    its packet (logged); closing the outbox stops waiting for the rest."""
    from bot.state.outbox import IN_FLIGHT

    async def run() -> None:
        store = SlowStore(delays)
        transport = Pipe(store)
        journal = Journal(store, KEY)
        await journal.claim()
        outbox = Outbox(transport, "alice", max_packet=15_000, journal=journal)
        for _ in range(n):
            outbox.put(Pong(), "lkbot")
        # nothing answered yet: everything goes out all the same, up to IN_FLIGHT
        await _until(store, lambda: len(transport.sent) == min(n, IN_FLIGHT))
        assert [seq for seq, _ in transport.sent] == list(range(1, min(n, IN_FLIGHT) + 1))
        for i, answer in enumerate(transport.answers):
            if i in failing:
                answer.set_exception(ConnectionError("room closed"))
            else:
                answer.set_result(None)
        await _until(store, lambda: len(transport.sent) == n)
        assert [seq for seq, _ in transport.sent] == list(range(1, n + 1))
        assert [(s, t) for s, t in transport.sent if s > t] == []
        await outbox.aclose()
        assert all(a.done() for a in transport.answers)
        await journal.aclose()

    asyncio.run(run())


async def test_an_answer_outside_the_seqs_waits_for_a_quiet_room_with_what_follows_it() -> None:
    """A transport that says when the room is quiet (RoomTransport, see bot.room.lane):
    a seq-0 answer (a flood's `rate_limited`) is handed over only then, and what its
    recipient gets after it waits behind it (nothing reordered); sequenced packets
    before it went at once."""
    store = SlowStore([])
    transport = Pipe(store)
    calm = asyncio.Event()

    async def quiet() -> None:
        await calm.wait()

    transport.quiet = quiet  # type: ignore[attr-defined]
    journal = Journal(store, KEY)
    await journal.claim()
    outbox = Outbox(transport, "alice", max_packet=15_000, journal=journal)
    outbox.put(Pong(), "lkbot")
    outbox.put_fields({"type": "error", "code": "rate_limited", "reply_to": "m"}, "lkbot")
    outbox.put(Pong(), "lkbot")
    await _until(store, lambda: len(transport.sent) == 1)
    for _ in range(20):
        await asyncio.sleep(0)
    assert [seq for seq, _ in transport.sent] == [1]  # the seq-0 answer waits, and seq 2
    calm.set()
    await _until(store, lambda: len(transport.sent) == 3)
    assert [seq for seq, _ in transport.sent] == [1, 0, 2]
    await outbox.aclose()
    await journal.aclose()


async def test_a_flush_waits_for_the_answers_of_what_was_handed_over() -> None:
    """Closing a conversation flushes its outbox, then the room may be left: a packet
    handed to livekit-ffi but not yet answered (still in its queue) must not be
    counted as gone out, or a worker's last `turn.end`s are lost as it leaves."""
    store = SlowStore([])
    transport = Pipe(store)
    journal = Journal(store, KEY)
    await journal.claim()
    outbox = Outbox(transport, "alice", max_packet=15_000, journal=journal)
    outbox.put(Pong(), "lkbot")
    await _until(store, lambda: len(transport.sent) == 1)
    flushed = asyncio.create_task(outbox.flush(timeout=60))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not flushed.done()  # handed over, not answered
    transport.answers[0].set_result(None)
    await asyncio.wait_for(flushed, 10)
    await outbox.aclose()
    await journal.aclose()
