"""One contract, every backend: memory, SQLite (a real file) and Redis (a real
redis-server on a free loopback port). The property test drives random batches of
changes through a backend and through a plain model of the rules, and compares."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.store import (
    Bounds,
    Changes,
    ConversationKey,
    ConversationState,
    Lease,
    MemoryStore,
    SeenId,
    SentRecord,
    Stale,
    Store,
    open_store,
)
from bot.store.redis import RedisStore
from bot.store.sqlite import SQLiteStore

from .rig import explore

T = TypeVar("T")
BOUNDS = Bounds(history_max=5, sent_max=4, sent_max_bytes=110, ids_max=3)
BACKENDS = ["memory", "sqlite", "redis"]


MakeStore = Callable[..., Store]


@pytest.fixture(params=BACKENDS)
def make_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> MakeStore:
    """A function that opens a fresh, empty store of the backend (call it in a loop)."""

    def make(bounds: Bounds = BOUNDS) -> Store:
        if request.param == "memory":
            return MemoryStore(bounds)
        if request.param == "sqlite":
            path = tmp_path_factory.mktemp("store") / "c.db"
            return SQLiteStore(path, bounds)
        url = request.getfixturevalue("redis_url")
        return RedisStore(url, bounds, prefix=f"t{uuid.uuid4().hex[:8]}")

    return make


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


_n = itertools.count(1)


def sent(seq: int, pad: str = "") -> SentRecord:
    return SentRecord(seq, f"b{seq}", "lkbot", f'{{"seq":{seq},"t":"é\\u2028{pad}"}}')


def item(text: str, turn: str = "t_1") -> dict[str, Any]:
    return {"role": "user", "text": text, "ts": 1, "turn": turn, "metadata": {"k": [1, "ü"]}}


KEY = ConversationKey("room/1", "alice@example")


async def _roundtrip(store: Store) -> ConversationState:
    lease = Lease("t_1", "c1", "lkbot", "me", 123)
    await store.apply(
        KEY,
        Changes(
            seq=2,
            history=[item("hi"), item("yo")],
            sent=[sent(1), sent(2)],
            ids=[SeenId("c1", "f1", "t_1"), SeenId("c2", "f2", None)],
            leases={"t_1": lease},
        ),
    )
    try:
        return await store.load(KEY)
    finally:
        await store.aclose()


def test_an_empty_store_has_an_empty_conversation(make_store: MakeStore) -> None:
    async def go() -> ConversationState:
        store = make_store()
        try:
            return await store.load(KEY)
        finally:
            await store.aclose()

    state = run(go())
    assert state.empty
    assert state.seq == 0


def test_what_is_applied_is_loaded_back(make_store: MakeStore) -> None:
    state = run(_roundtrip(make_store()))
    assert state.seq == 2
    assert state.history == [item("hi"), item("yo")]
    assert state.sent == [sent(1), sent(2)]
    assert state.ids == [SeenId("c1", "f1", "t_1"), SeenId("c2", "f2", None)]
    assert state.leases == [Lease("t_1", "c1", "lkbot", "me", 123)]


def test_bounds_keep_the_newest(make_store: MakeStore) -> None:
    async def go() -> ConversationState:
        store = make_store()
        for i in range(1, 11):
            await store.apply(
                KEY,
                Changes(
                    seq=i, history=[item(str(i))], sent=[sent(i)], ids=[SeenId(str(i), "p", None)]
                ),
            )
        try:
            return await store.load(KEY)
        finally:
            await store.aclose()

    state = run(go())
    assert [h["text"] for h in state.history] == ["6", "7", "8", "9", "10"]
    assert [s.seq for s in state.sent] == [7, 8, 9, 10]
    assert [s.id for s in state.ids] == ["8", "9", "10"]
    assert state.seq == 10


def test_conversations_are_apart(make_store: MakeStore) -> None:
    """One sender never reads another's conversation, even with look-alike names."""
    keys = [
        ConversationKey("r", "a"),
        ConversationKey("r", "b"),
        ConversationKey("r/a", ""),
        ConversationKey("", "r/a"),
        ConversationKey("r%2Fa", "x"),
    ]

    async def go() -> list[ConversationState]:
        store = make_store()
        for i, key in enumerate(keys):
            await store.apply(key, Changes(seq=i + 1, history=[item(f"of {i}")]))
        try:
            assert sorted(map(str, await store.keys())) == sorted(map(str, keys))
            return [await store.load(k) for k in keys]
        finally:
            await store.aclose()

    states = run(go())
    for i, state in enumerate(states):
        assert state.seq == i + 1
        assert [h["text"] for h in state.history] == [f"of {i}"]


def test_reset_delete_and_leases(make_store: MakeStore) -> None:
    async def go() -> tuple[ConversationState, bool, ConversationState]:
        store = make_store()
        a = Lease("t_a", "c1", "lkbot", "me", 1)
        b = Lease("t_b", "c2", "lkbot", "me", 2)
        await store.apply(KEY, Changes(seq=1, history=[item("x")], leases={"t_a": a, "t_b": b}))
        await store.apply(KEY, Changes(history_cleared=True, history=[item("y")], ended={"t_a"}))
        state = await store.load(KEY)
        deleted = await store.delete(KEY)
        after = await store.load(KEY)
        await store.aclose()
        return state, deleted, after

    state, deleted, after = run(go())
    assert [h["text"] for h in state.history] == ["y"]
    assert state.leases == [Lease("t_b", "c2", "lkbot", "me", 2)]
    assert deleted
    assert after.empty


def test_a_reset_leaves_nothing_to_replay_and_no_prints(make_store: MakeStore) -> None:
    async def go() -> ConversationState:
        store = make_store()
        ids = [SeenId("c1", "secret-print", "t_1"), SeenId("c2", "p2", None)]
        await store.apply(KEY, Changes(seq=2, sent=[sent(1), sent(2)], ids=ids))
        await store.apply(
            KEY,
            Changes(
                seq=3,
                sent_cleared=True,
                ids_forgotten=True,
                sent=[sent(3)],
                ids=[SeenId("c3", "p3", "t_3")],
            ),
        )
        try:
            return await store.load(KEY)
        finally:
            await store.aclose()

    state = run(go())
    assert state.sent == [sent(3)]
    assert state.ids == [SeenId("c1", "", "t_1"), SeenId("c2", "", None), SeenId("c3", "p3", "t_3")]
    assert state.seq == 3


def test_the_resume_window_is_bounded_by_bytes(make_store: MakeStore) -> None:
    async def go() -> ConversationState:
        store = make_store()
        await store.apply(KEY, Changes(seq=2, sent=[sent(1), sent(2, "y" * 40)]))
        await store.apply(KEY, Changes(seq=3, sent=[sent(3, "z" * 50)]))
        try:
            return await store.load(KEY)
        finally:
            await store.aclose()

    assert [s.seq for s in run(go()).sent] == [3]  # 25 + 65 + 75 bytes: only the last fits


def test_over_the_cap_the_least_recently_claimed_go(make_store: MakeStore) -> None:
    keys = [ConversationKey("r", f"u{i}") for i in range(5)]

    async def go() -> tuple[list[str], ConversationState]:
        store = make_store(Bounds(max_conversations=3))
        try:
            for key in keys[:3]:
                await store.claim(key, "me")
                await store.apply(key, Changes(seq=1, history=[item("x")]))
            await store.claim(keys[0], "me")  # used again: now the most recent
            await store.claim(keys[3], "me")
            await store.claim(keys[4], "me")
            return sorted(map(str, await store.keys())), await store.load(keys[1])
        finally:
            await store.aclose()

    names, evicted = run(go())
    assert names == sorted(map(str, [keys[0], keys[3], keys[4]]))
    assert evicted.empty


def test_only_the_latest_claim_writes(make_store: MakeStore) -> None:
    """Fencing: a claim makes every earlier one stale; a stale writer's batch is
    refused whole, in the same transaction as the check; a deleted conversation's
    old token stays refused (tokens are never given twice)."""

    async def go() -> None:
        store = make_store()
        try:
            await store.apply(KEY, Changes(seq=3, history=[item("before")]))
            first = await store.claim(KEY, "a")
            assert first.state.seq == 3
            await store.apply(KEY, Changes(fence=first.fence, seq=4, sent=[sent(4)]))
            second = await store.claim(KEY, "b")
            assert second.fence > first.fence
            assert second.state.seq == 4 and [s.seq for s in second.state.sent] == [4]
            with pytest.raises(Stale):
                await store.apply(
                    KEY, Changes(fence=first.fence, seq=5, sent=[sent(5)], history=[item("x")])
                )
            after = await store.load(KEY)
            assert after.seq == 4 and [s.seq for s in after.sent] == [4]
            assert [h["text"] for h in after.history] == ["before"]
            await store.apply(KEY, Changes(fence=second.fence, seq=5, sent=[sent(5)]))
            assert (await store.load(KEY)).seq == 5
            assert await store.delete(KEY)
            with pytest.raises(Stale):  # deleted: no claim holds it
                await store.apply(KEY, Changes(fence=second.fence, seq=6))
            third = await store.claim(KEY, "c")
            assert third.fence > second.fence and third.state.seq == 0
            with pytest.raises(Stale):
                await store.apply(KEY, Changes(fence=second.fence, seq=6))
            await store.apply(KEY, Changes(fence=third.fence, seq=1))
            assert (await store.load(KEY)).seq == 1
        finally:
            await store.aclose()

    run(go())


def test_worker_leases_and_leader_leases(make_store: MakeStore) -> None:
    """The fleet's view of itself, kept in the store every worker shares."""

    async def go() -> None:
        store = make_store()
        try:
            seen = await store.beat("AW_a", 60_000)
            assert 0 < seen["AW_a"] <= 60_000
            seen = await store.beat("AW_b", -1)  # retired: dead at once
            assert seen["AW_b"] <= 0 and seen["AW_a"] > 0
            assert await store.lead("watchdog", "p1", 60_000)
            assert not await store.lead("watchdog", "p2", 60_000)
            assert await store.lead("watchdog", "p1", 60_000)  # its holder renews it
            assert await store.lead("other", "p2", 60_000)  # roles are apart
            assert await store.lead("short", "p1", 1)
            async with asyncio.timeout(30):  # the lease running out is what is tested
                while True:
                    if await store.lead("short", "p2", 60_000):
                        break
                    await asyncio.sleep(0.01)
        finally:
            await store.aclose()

    run(go())


def test_which_worker_serves_which_room(make_store: MakeStore) -> None:
    """What the fleet's watchdog reads when a worker's lease runs out: its rooms only."""

    async def go() -> None:
        store = make_store()
        try:
            await store.serve_room("r1", "AW_a")
            await store.serve_room("r2", "AW_a")
            await store.serve_room("r3", "AW_b")
            await store.left_room("r2", "AW_a")
            assert sorted(await store.rooms_of("AW_a")) == ["r1"]
            assert await store.rooms_of("AW_b") == ["r3"]
            assert await store.rooms_of("AW_none") == []
            await store.forget_rooms("AW_a")
            assert await store.rooms_of("AW_a") == []
        finally:
            await store.aclose()

    run(go())


def test_a_conversation_past_its_ttl_is_gone(make_store: MakeStore) -> None:
    """Waits on the clock by polling (bounded): the TTL is what is under test."""

    async def go() -> bool:
        store = make_store(Bounds(ttl_s=1))
        await store.apply(KEY, Changes(seq=1, history=[item("x")]))
        assert not (await store.load(KEY)).empty
        try:
            async with asyncio.timeout(30):
                while not (await store.load(KEY)).empty:
                    await store.purge_expired()
                    await asyncio.sleep(0.2)
            return True
        finally:
            await store.aclose()

    assert run(go())


# -- the property: any sequence of batches, the backend agrees with the model --

texts = st.text(max_size=12)
changes = st.builds(
    Changes,
    seq=st.none() | st.integers(1, 10_000),
    history_cleared=st.booleans(),
    sent_cleared=st.booleans(),
    ids_forgotten=st.booleans(),
    history=st.lists(texts.map(item), max_size=4),
    ids=st.lists(st.builds(SeenId, texts, texts, st.none() | texts), max_size=4),
    leases=st.dictionaries(
        st.sampled_from(["t1", "t2", "t3"]),
        st.builds(Lease, st.just("x"), texts, texts, texts, st.integers(0, 2**40)),
        max_size=2,
    ),
    ended=st.sets(st.sampled_from(["t1", "t2", "t3"]), max_size=2),
)


def _model(batches: list[Changes]) -> ConversationState:
    """The rules, written out plainly."""
    s = ConversationState()
    leases: dict[str, Lease] = {}
    seq = 0
    for c in batches:
        if c.seq is not None:
            seq = max(seq, c.seq)
        if c.history_cleared:
            s.history = []
        s.history = (s.history + c.history)[-BOUNDS.history_max :]
        if c.ids_forgotten:
            s.ids = [SeenId(x.id, "", x.turn) for x in s.ids]
        s.ids = (s.ids + c.ids)[-BOUNDS.ids_max :]
        if c.sent_cleared:
            s.sent = []
        s.sent = (s.sent + c.sent)[-BOUNDS.sent_max :]
        while sum(len(r.text.encode()) for r in s.sent) > BOUNDS.sent_max_bytes:
            s.sent = s.sent[1:]
        leases |= {
            t: Lease(t, x.request_id, x.topic, x.owner, x.until_ms) for t, x in c.leases.items()
        }
        for t in c.ended:
            leases.pop(t, None)
    s.seq = seq
    s.leases = [leases[t] for t in sorted(leases)]
    return s


@pytest.mark.parametrize("backend", BACKENDS)
@explore(25)
@given(batches=st.lists(changes, min_size=1, max_size=6))
def test_any_batches_agree_with_the_model(
    backend: str,
    batches: list[Changes],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> None:
    # seq only grows in real use (one writer, counting up): sent records follow it
    counter = itertools.count(1)
    fixed: list[Changes] = []
    for c in batches:
        recs = [sent(next(counter), "ä" * len(h["text"])) for h in c.history[:2]]
        leases = {
            t: Lease(t, x.request_id, x.topic, x.owner, x.until_ms) for t, x in c.leases.items()
        }
        top = recs[-1].seq if recs else None
        fixed.append(
            Changes(
                seq=top,
                history_cleared=c.history_cleared,
                sent_cleared=c.sent_cleared,
                ids_forgotten=c.ids_forgotten,
                history=c.history,
                sent=recs,
                ids=c.ids,
                leases=leases,
                ended=c.ended - set(leases),
            )
        )
    if backend == "memory":
        url = "memory"
    elif backend == "sqlite":
        url = f"sqlite://{tmp_path_factory.mktemp('prop') / 'c.db'}"
    else:
        url = request.getfixturevalue("redis_url")

    async def go() -> ConversationState:
        store = open_store(url, BOUNDS)
        if isinstance(store, RedisStore):
            store.prefix = f"p{uuid.uuid4().hex[:8]}"
        key = ConversationKey("r", f"u{next(_n)}")
        try:
            for c in fixed:
                await store.apply(key, c)
            return await store.load(key)
        finally:
            await store.aclose()

    got = run(go())
    want = _model(fixed)
    assert (got.seq, got.history, got.sent, got.ids, got.leases) == (
        want.seq,
        want.history,
        want.sent,
        want.ids,
        want.leases,
    )


def test_store_urls() -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    assert isinstance(open_store("sqlite:///tmp/x.db"), SQLiteStore)
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisStore)
    with pytest.raises(ValueError, match="BOT_STORE"):
        open_store("postgres://x")


def test_a_sqlite_file_is_created_on_first_use_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "c.db"

    async def go() -> None:
        store = SQLiteStore(path)
        await store.apply(KEY, Changes(seq=1))
        await store.aclose()

    run(go())
    import sqlite3

    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_store_cli_lists_shows_and_deletes(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    url = f"sqlite://{tmp_path / 'c.db'}"

    async def seed() -> None:
        store = open_store(url)
        await store.apply(KEY, Changes(seq=3, history=[item("hi")]))
        await store.aclose()

    run(seed())
    env = {**os.environ, "BOT_STORE": url, "PYTHONPATH": str(Path(__file__).parents[1])}

    def bot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "store", *args], capture_output=True, text=True, env=env
        )

    assert bot("list").stdout == "room/1\talice@example\n"
    shown = json.loads(bot("show", "room/1", "alice@example").stdout)
    assert shown["seq"] == 3 and shown["history"][0]["text"] == "hi"
    assert bot("delete", "room/1", "alice@example").returncode == 0
    assert bot("show", "room/1", "alice@example").returncode == 1
