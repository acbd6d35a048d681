"""Conversations outlive their dispatcher (a worker restart), their sender's departure
and a worker that dies mid-turn: on a real SQLite file and a real redis-server."""

from __future__ import annotations

import json

import pytest

from bot.protocol.outbound import Ack, HistoryPage, SessionReady, TurnEnd
from bot.store import Changes, Claim, ConversationKey, Lease, open_store
from bot.store.model import now_ms

from .conftest import MakeBot, OpenStore
from .harness import count, direct_answers, msg

KEY = ConversationKey("r", "alice")


async def test_a_conversation_survives_a_restart(make_bot: MakeBot, open_same: OpenStore) -> None:
    first_store = open_same()
    first = await make_bot(store=first_store, room="r")
    first.send("alice", msg("session.hello", "h1"))
    first.send("alice", msg("chat.message", "m1", text="remember me"))
    await first.turn_ends("alice")
    before = first.messages("alice")
    last = max(m.seq for m in before if m.seq)
    await first.close()  # the worker stops: everything written
    await first_store.aclose()

    store = open_same()
    second = await make_bot(store=store, room="r")
    second.send("alice", msg("session.hello", "h2", resume={"last_seq": 0}))
    ready = await second.answer("alice", "h2")
    assert isinstance(ready, SessionReady)
    after = second.messages("alice")
    replayed = [m for m in after if m.seq and m.seq <= last]
    assert [m.seq for m in replayed] == list(range(1, last + 1))  # in order, no gap
    assert [m.id for m in replayed] == [m.id for m in before]  # the very same messages
    assert ready.seq == last + 1  # seq keeps counting

    second.send("alice", msg("history.get", "g"))
    page = await second.answer("alice", "g")
    assert isinstance(page, HistoryPage)
    assert [(i.role, i.text) for i in page.items] == [
        ("user", "remember me"),
        ("assistant", "You said: remember me"),
    ]
    second.send("alice", msg("chat.message", "m1", text="remember me"))  # a retry
    # (the replay above holds the first ack to m1 too)
    acks = await second.until("alice", lambda ms: len(direct_answers(ms, "m1")) == 2)
    dup = direct_answers(acks, "m1")[-1]
    assert isinstance(dup, Ack)
    assert dup.status == "duplicate"
    await second.close()
    await store.aclose()


async def test_history_reset_deletes_from_the_store(
    make_bot: MakeBot, open_same: OpenStore
) -> None:
    store = open_same()
    bot = await make_bot(store=store, room="r")
    bot.send("alice", msg("chat.message", "m1", text="secret"))
    await bot.turn_ends("alice")
    bot.send("alice", msg("history.reset", "x"))
    await bot.answer("alice", "x")
    await bot.close()
    assert (await store.load(KEY)).history == []
    await store.aclose()


async def test_a_turn_left_by_a_dead_worker_ends_interrupted(make_bot: MakeBot) -> None:
    """A claim fences off every earlier writer: turns they recorded as running can
    never end by them, so they end at once (no waiting for a lease to expire)."""
    store = open_store("memory")
    dead = Lease("t_dead", "c9", "lkbot", "gone:1:x", now_ms() - 1)
    fresh = Lease("t_fresh", "c8", "lkbot", "gone:1:x", now_ms() + 60_000)
    await store.apply(KEY, Changes(seq=5, leases={"t_dead": dead, "t_fresh": fresh}))
    bot = await make_bot(store=store, room="r")
    bot.send("alice", msg("session.hello", "h"))
    msgs = await bot.until("alice", lambda ms: count(ms, "turn.end") == 2)
    ends = [m for m in msgs if isinstance(m, TurnEnd)]
    assert {(e.turn, e.reply_to, e.status, e.reason) for e in ends} == {
        ("t_dead", "c9", "failed", "interrupted"),
        ("t_fresh", "c8", "failed", "interrupted"),
    }
    assert all(e.error is not None and e.error.retryable for e in ends)
    assert all(e.seq and e.seq > 5 for e in ends)  # the stored conversation's seq goes on
    await bot.close()
    assert (await store.load(KEY)).leases == []


async def test_a_turn_taken_over_ends_once_for_its_client(make_bot: MakeBot) -> None:
    """Two bots, one conversation: the second claims it while the first runs a turn.
    The second ends that turn for the client; the first's own end (and anything else
    it sends from then on) is refused by the store and never published."""
    store = open_store("memory")
    first = await make_bot(store=store, room="r")
    first.send("alice", msg("chat.message", "m", text='!{"stall": true}'))
    msgs = await first.until("alice", lambda ms: count(ms, "turn.delta") >= 1)
    turn = next(m.turn for m in msgs if m.type == "turn.start")
    second = await make_bot(store=store, room="r")
    second.send("alice", msg("session.hello", "h"))
    taken = await second.until("alice", lambda ms: count(ms, "turn.end") == 1)
    assert [(e.turn, e.status, e.reason) for e in taken if isinstance(e, TurnEnd)] == [
        (turn, "failed", "interrupted")
    ]
    first.send("alice", msg("chat.cancel", "c", turn=turn))
    stale = first.dispatcher.conversations.get("alice")
    await first.close()  # the first bot's turn ends; its writes are refused
    assert stale is None or stale.journal.stale
    assert count(first.messages("alice"), "turn.end") == 0
    seqs = [m.seq for m in first.messages("alice") + second.messages("alice") if m.seq]
    assert len(seqs) == len(set(seqs))
    assert (await store.load(KEY)).seq == max(seqs)


async def test_a_running_turn_is_recorded_until_it_ends(make_bot: MakeBot) -> None:
    store = open_store("memory")
    bot = await make_bot(store=store, room="r")
    bot.send("alice", msg("chat.message", "m", text='!{"stall": true}'))
    msgs = await bot.until("alice", lambda ms: count(ms, "turn.delta") >= 1)
    turn = next(m.turn for m in msgs if m.type == "turn.start")
    conv = bot.dispatcher.conversations["alice"]
    await conv.journal.flush()
    assert [x.turn for x in (await store.load(KEY)).leases] == [turn]
    bot.send("alice", msg("chat.cancel", "c", turn=turn))
    await bot.turn_ends("alice")
    await conv.journal.flush()
    assert (await store.load(KEY)).leases == []
    await bot.close()


async def test_a_store_that_cannot_be_read_is_answered_busy_not_started_over(
    make_bot: MakeBot,
) -> None:
    """Never an empty conversation over a stored one: the packet gets a retryable
    `busy` outside the run of seqs (seq 0), and once the store answers again the
    conversation continues from what it holds."""
    store = open_store("memory")
    await store.apply(KEY, Changes(seq=7))
    down = True
    claim = store.claim

    async def flaky(key: ConversationKey, owner: str) -> Claim:
        if down:
            raise ConnectionError("store down")
        return await claim(key, owner)

    store.claim = flaky  # type: ignore[method-assign]
    bot = await make_bot(store=store, room="r")
    bot.send("alice", msg("ping", "p1"))
    err = await bot.answer("alice", "p1")
    assert err.type == "error" and err.code == "busy" and err.seq == 0  # type: ignore[union-attr]
    assert err.retryable  # type: ignore[union-attr]
    down = False
    bot.send("alice", msg("ping", "p2"))
    pong = await bot.answer("alice", "p2")
    assert pong.type == "pong" and pong.seq == 8
    await bot.close()


async def test_a_sender_who_leaves_mid_turn_finds_its_end_on_return(make_bot: MakeBot) -> None:
    bot = await make_bot(room="r")  # the dispatcher's own memory store
    bot.send("alice", msg("session.hello", "h1"))
    bot.send("alice", msg("chat.message", "m", text='!{"stall": true}'))
    await bot.until("alice", lambda ms: count(ms, "turn.delta") >= 1)
    seen = max(m.seq for m in bot.messages("alice") if m.seq)
    bot.dispatcher.on_participant_left("alice")
    bot.send("alice", msg("session.hello", "h2", resume={"last_seq": seen}))
    await bot.answer("alice", "h2")
    ends = [m for m in bot.messages("alice") if isinstance(m, TurnEnd)]
    assert [(e.status, e.reason) for e in ends] == [("cancelled", "participant_left")]
    assert ends[0].seq == seen + 1
    bot.send("alice", msg("history.get", "g"))
    page = await bot.answer("alice", "g")
    assert isinstance(page, HistoryPage)
    assert [i.text for i in page.items] == ['!{"stall": true}']
    await bot.close()


async def test_every_message_of_a_long_reply_is_stored_in_few_writes(make_bot: MakeBot) -> None:
    store = open_store("memory")
    bot = await make_bot(store=store, room="r", delta_max_chars=16)
    bot.send("alice", msg("chat.message", "m", text='!{"long": 3000, "chunk": 7}'))
    await bot.turn_ends("alice")
    conv = bot.dispatcher.conversations["alice"]
    await conv.journal.flush()
    sent = bot.messages("alice")
    stored = (await store.load(KEY)).sent
    assert [s.seq for s in stored] == [m.seq for m in sent][-len(stored) :]
    assert stored[-1].seq == len(sent)
    assert conv.journal.writes < len(sent)  # batched, not one write per message
    await bot.close()


@pytest.mark.parametrize(
    ("after_ms", "opening"),
    [
        # `thinking` at once: recorded in a third pass of the loop, in the same write
        (0, ["ack", "turn.start", "turn.status"]),
        # the model keeps the user waiting: `thinking` comes later, in a write of its own
        (10, ["ack", "turn.start"]),
    ],
)
async def test_a_turns_opening_is_one_write(
    make_bot: MakeBot, after_ms: int, opening: list[str]
) -> None:
    """The answer to a chat.message, its turn's start (and first status, when sent at
    once) are recorded over passes of the loop; they are stored (and may go out) in one
    write."""
    store = open_store("memory")
    writes: list[list[str]] = []
    apply = store.apply

    async def recorded(key: ConversationKey, changes: Changes) -> None:
        writes.append([json.loads(s.text)["type"] for s in changes.sent])
        await apply(key, changes)

    store.apply = recorded  # type: ignore[method-assign]
    bot = await make_bot(store=store, room="r", thinking_after_ms=after_ms)
    bot.send("alice", msg("chat.message", "m", text='!{"delay": 0.5, "say": "hi"}'))
    await bot.turn_ends("alice")
    assert next(w for w in writes if "ack" in w) == opening
    assert sum(w.count("turn.status") for w in writes) == 1
    await bot.close()


async def test_a_bot_that_lost_the_conversation_says_so_on_resume(make_bot: MakeBot) -> None:
    bot = await make_bot(room="r")
    bot.send("alice", msg("session.hello", "h", resume={"last_seq": 41}))
    err = await bot.answer("alice", "h")
    assert err.type == "error"
    assert err.code == "resume_gap"  # type: ignore[union-attr]
    assert "only up to seq 0" in err.message  # type: ignore[union-attr]
    await bot.close()
