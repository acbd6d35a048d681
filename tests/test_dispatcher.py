"""Dispatcher behaviour on the in-memory transport: answers, errors, limits, topics."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.core.context import Context
from bot.handlers import HANDLERS
from bot.protocol.codec import encode
from bot.protocol.inbound import Ping
from bot.protocol.outbound import Error, HistoryPage, SessionReady

from .conftest import MakeBot
from .harness import Harness, chat, count, direct_answers, msg, script


async def test_ping_gets_pong_with_envelope(bot: Harness) -> None:
    bot.send("alice", msg("ping", id="p1"))
    answer = await bot.answer("alice", "p1")
    assert answer.type == "pong"
    assert answer.v == 1 and answer.seq == 1 and answer.ts > 0 and answer.id


async def test_hello_describes_limits_and_tools(bot: Harness) -> None:
    bot.send("alice", msg("session.hello", id="h1", client={"name": "widget", "version": "2"}))
    ready = await bot.answer("alice", "h1")
    assert isinstance(ready, SessionReady)
    assert ready.protocol == "1.0"
    assert ready.limits.max_packet == bot.settings.max_packet
    names = {t.name for t in ready.tools}
    assert {"current_time", "calculate", "participants", "boom"} <= names
    assert all(t.description for t in ready.tools if t.name == "calculate")


async def test_features_list_tools_only_when_tools_are_offered(make_bot: MakeBot) -> None:
    bot = await make_bot(builtin_tools=(), tools_module="")
    bot.send("alice", msg("session.hello", id="h1"))
    ready = await bot.answer("alice", "h1")
    assert isinstance(ready, SessionReady) and ready.tools == []
    assert "tools" not in ready.features and "streaming" in ready.features
    with_tools = await make_bot()
    with_tools.send("alice", msg("session.hello", id="h2"))
    ready = await with_tools.answer("alice", "h2")
    assert isinstance(ready, SessionReady) and "tools" in ready.features


async def test_resume_replays_what_was_missed(bot: Harness) -> None:
    for i in range(3):
        bot.send("alice", msg("ping", id=f"p{i}"))
    await bot.answer("alice", "p2")
    bot.send("alice", msg("session.hello", id="h1", resume={"last_seq": 1}))
    await bot.answer("alice", "h1")
    msgs = bot.messages("alice")
    # seq 2 and 3 again, in order, then the answer to the hello
    assert [(m.type, m.seq) for m in msgs[3:]] == [("pong", 2), ("pong", 3), ("session.ready", 4)]
    assert "resume" in msgs[-1].features  # type: ignore[union-attr]
    bot.send("alice", msg("session.hello", id="h2", resume={"last_seq": 4}))
    assert (await bot.answer("alice", "h2")).seq == 5  # nothing missed: nothing replayed


async def test_resume_gap_names_what_is_gone(make_bot: MakeBot) -> None:
    bot = await make_bot(resume_window=2)
    for i in range(4):
        bot.send("alice", msg("ping", id=f"p{i}"))
    await bot.answer("alice", "p3")
    bot.send("alice", msg("session.hello", id="h1", resume={"last_seq": 0}))
    err = await bot.answer("alice", "h1")
    assert isinstance(err, Error) and err.code == "resume_gap" and not err.retryable
    assert "1..2" in err.message
    assert len(bot.messages("alice")) == 5  # nothing was replayed


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{nope", "invalid_json"),
        (json.dumps({"v": 1, "type": "chat.message", "id": "e1"}), "invalid_message"),
        (json.dumps({"v": 1, "type": "chat.message", "id": "e1", "text": 5}), "invalid_message"),
        (json.dumps({"v": 1, "type": "teleport", "id": "e1"}), "unknown_type"),
        (json.dumps({"v": 9, "type": "ping", "id": "e1"}), "unsupported_version"),
        (
            json.dumps({"v": 1, "type": "chat.message", "id": "e1", "text": "x" * 20000}),
            "payload_too_large",
        ),
        (
            json.dumps({"v": 1, "type": "chat.message", "id": "e1", "text": "x" * 9000}),
            "payload_too_large",
        ),
    ],
)
async def test_bad_input_gets_one_clear_error(bot: Harness, body: bytes | str, code: str) -> None:
    bot.send("alice", body)
    msgs = await bot.until("alice", lambda ms: count(ms, "error") == 1)
    err = msgs[0]
    assert isinstance(err, Error)
    assert err.code == code and err.message and isinstance(err.retryable, bool)
    assert err.reply_to == (None if code == "invalid_json" else "e1")
    # ...and the bot keeps serving this sender
    bot.send("alice", msg("ping", id="after"))
    assert (await bot.answer("alice", "after")).type == "pong"


async def test_every_message_type_gets_exactly_one_direct_answer(bot: Harness) -> None:
    sent = [
        msg("session.hello", id="a1"),
        chat("hello", id="a2"),
        msg("chat.cancel", id="a3", turn="t_unknown"),
        msg("history.get", id="a4"),
        msg("history.reset", id="a5"),
        msg("ping", id="a6"),
        msg("ping", id="a7", extra_field=1),
    ]
    for body in sent:
        bot.send("alice", body)
    msgs = await bot.until(
        "alice",
        lambda ms: count(ms, "turn.end") == 1 and all(direct_answers(ms, b["id"]) for b in sent),
    )
    for body in sent:
        assert len(direct_answers(msgs, body["id"])) == 1, body["type"]


async def test_other_topics_and_serverless_packets_are_ignored(bot: Harness) -> None:
    bot.send("alice", msg("ping", id="x1"), topic="other")
    bot.send(None, msg("ping", id="x2"))
    bot.send("alice", msg("ping", id="x3"))
    msgs = await bot.until("alice", lambda ms: len(ms) >= 1)
    assert [m.reply_to for m in msgs] == ["x3"]
    assert set(bot.transport.sent) == {"alice"}


async def test_replies_use_the_request_topic(make_bot: MakeBot) -> None:
    bot = await make_bot(topics=("lkbot", "support"))
    bot.send("alice", msg("ping", id="s1"), topic="support")
    await bot.answer("alice", "s1")
    assert bot.transport.sent["alice"][0][0] == "support"


async def test_flood_is_rate_limited_and_every_packet_answered(make_bot: MakeBot) -> None:
    bot = await make_bot(rate_burst=3, rate_per_second=0.001)
    ids = [f"f{i}" for i in range(10)]
    for i in ids:
        bot.send("alice", msg("ping", id=i))
    msgs = await bot.until("alice", lambda ms: all(direct_answers(ms, i) for i in ids))
    answers = [direct_answers(msgs, i) for i in ids]
    assert all(len(a) == 1 for a in answers)
    assert [a[0].type for a in answers[:3]] == ["pong"] * 3
    limited = [a[0] for a in answers[3:]]
    assert all(isinstance(e, Error) and e.code == "rate_limited" and e.retryable for e in limited)
    assert all(e.retry_after_ms and e.retry_after_ms > 0 for e in limited)  # type: ignore[union-attr]


async def test_a_flood_does_not_push_the_turns_out_of_the_resume_window(
    make_bot: MakeBot,
) -> None:
    """`rate_limited` answers are outside the run of seqs (seq 0): never kept for a
    resume nor written to the store. A flood used to fill the resume window with them,
    so that a client resuming after it got `resume_gap` for its own turn's messages."""
    bot = await make_bot(rate_burst=3, rate_per_second=0.001, resume_window=16)
    bot.send("alice", chat("before the flood", id="m"))
    await bot.turn_ends("alice")
    seen = max(m.seq for m in bot.messages("alice") if m.seq)
    for i in range(40):
        bot.send("alice", msg("ping", id=f"f{i}"))
    msgs = await bot.until("alice", lambda ms: all(direct_answers(ms, f"f{i}") for i in range(40)))
    limited = [m for m in msgs if isinstance(m, Error) and m.code == "rate_limited"]
    assert len(limited) >= 38 and all(e.seq == 0 for e in limited)
    outbox = bot.dispatcher.conversations["alice"].outbox
    assert outbox.first_kept == 1  # a resume from the start still gets everything
    assert outbox.last_seq == seen + 2  # the two pings answered before the limit


async def test_a_rate_limited_answer_is_what_its_model_would_encode(make_bot: MakeBot) -> None:
    """The flood's answer is written without the `Error` model (it is cheaper): its
    JSON is the model's own encoding, but for its id and time."""
    bot = await make_bot(rate_burst=1, rate_per_second=0.001)
    bot.send("alice", msg("ping", id="p1"))
    bot.send("alice", msg("ping", id="p2"))
    refused = await bot.answer("alice", "p2")
    assert isinstance(refused, Error)
    raw = json.loads(bot.transport.sent["alice"][-1][1])
    model = json.loads(encode(refused))
    assert {k: v for k, v in raw.items() if k not in ("id", "ts")} == {
        k: v for k, v in model.items() if k not in ("id", "ts")
    }


async def test_a_flooding_sender_does_not_starve_another(
    make_bot: MakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mallory's packets are stuck in her handler while she floods: alice is still
    answered (one shared queue would leave her behind mallory), and mallory's flood is
    answered `rate_limited` at the door instead of piling up."""
    bot = await make_bot(rate_burst=2, rate_per_second=0.001)
    release = asyncio.Event()
    pong = HANDLERS[Ping]

    async def slow_for_mallory(m: Ping, ctx: Context) -> None:
        if ctx.conversation.identity == "mallory":
            await release.wait()
        await pong(m, ctx)

    monkeypatch.setitem(HANDLERS, Ping, slow_for_mallory)
    for i in range(50):
        bot.send("mallory", msg("ping", id=f"m{i}"))
    bot.send("alice", msg("ping", id="ok"))
    assert (await bot.answer("alice", "ok")).type == "pong"
    assert not any(m.type == "pong" for m in bot.messages("mallory"))  # still stuck
    limited = [m for m in bot.messages("mallory") if isinstance(m, Error)]
    assert limited and all(e.code == "rate_limited" for e in limited)
    release.set()
    msgs = await bot.until("mallory", lambda ms: len(ms) == 50)
    assert all(len(direct_answers(msgs, f"m{i}")) == 1 for i in range(50))


async def test_handler_crash_is_internal_error(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(m: object, ctx: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(HANDLERS, Ping, broken)
    bot.send("alice", msg("ping", id="p"))
    err = await bot.answer("alice", "p")
    assert isinstance(err, Error) and err.code == "internal_error"
    assert "bug" not in err.message


async def test_client_chunk_frames_are_reassembled(make_bot: MakeBot) -> None:
    bot = await make_bot(max_metadata_bytes=40000)
    whole = json.dumps(chat(script(say="got it"), id="big", metadata={"blob": "z" * 30000}))
    frames = [whole[i : i + 10000] for i in range(0, len(whole), 10000)]
    for n, data in enumerate(frames, start=1):
        bot.send("alice", msg("chunk", id=f"big.{n}", of="big", n=n, total=len(frames), data=data))
    msgs = await bot.turn_ends("alice")
    assert [m.type for m in direct_answers(msgs, "big")] == ["ack"]
    assert msgs[-2].type == "turn.reply" and msgs[-2].text == "got it"  # type: ignore[union-attr]


async def test_bad_chunk_frame_answers_the_whole_message_id(bot: Harness) -> None:
    bot.send("alice", msg("chunk", id="q.1", of="q", n=3, total=2, data="x"))
    err = await bot.answer("alice", "q")
    assert isinstance(err, Error) and err.code == "invalid_message"


async def test_long_history_page_arrives_chunked(make_bot: MakeBot) -> None:
    bot = await make_bot(max_packet=2048, delta_max_chars=200)
    bot.send("alice", chat(script(long=6000), id="l1"))
    await bot.turn_ends("alice")
    bot.send("alice", msg("history.get", id="h"))
    page = await bot.answer("alice", "h")
    assert isinstance(page, HistoryPage) and len(page.items[-1].text) == 6000
    raw = [p for _, p in bot.transport.sent["alice"]]
    assert all(len(p.encode()) <= 2048 for p in raw)
    assert any(json.loads(p)["type"] == "chunk" for p in raw)


async def test_every_chunk_frame_is_charged(make_bot: MakeBot) -> None:
    """Only a message's first frame used to be charged: a sender could stream frames of
    one message without end. Now the flood is refused once, by the rate limit."""
    bot = await make_bot(rate_burst=5, rate_per_second=0.01)
    bot.send("alice", msg("ping", id="p"))
    await bot.answer("alice", "p")
    conv = bot.dispatcher.conversations["alice"]
    for n in range(1, 201):  # one at a time: never a flood of the inbox
        bot.send("alice", msg("chunk", id=f"f.{n}", of="flood", n=n, total=4000, data="x"))
        while not conv.inbox.empty():  # noqa: ASYNC110 (no event for "taken"; yields only)
            await asyncio.sleep(0)
    refused = await bot.answer("alice", "flood")
    assert isinstance(refused, Error) and refused.code == "rate_limited"
    assert conv.chunks.pending == frozenset()
    assert len(direct_answers(bot.messages("alice"), "flood")) == 1
