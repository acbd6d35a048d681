"""Turns through the real livekit-plugins-openai client and the HTTP scripted LLM."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.protocol.outbound import Ack, BotMessage, Error, HistoryPage, TurnEnd, TurnStatus
from bot.testing.llm_server import ScriptedLLMServer
from bot.turns.emitter import TurnEmitter
from bot.turns.turn import Turn

from .conftest import MakeBot
from .harness import Harness, chat, count, direct_answers, msg, of_turn, script


def assert_turn_well_formed(msgs: list[BotMessage], turn: str) -> list[BotMessage]:
    """Invariant 2 and 3: one start, one end, everything between; deltas == reply."""
    events = of_turn(msgs, turn)
    types = [e.type for e in events]
    assert types.count("turn.start") == 1 and types.count("turn.end") == 1
    assert types[0] == "turn.start" and types[-1] == "turn.end"
    start, end = msgs.index(events[0]), msgs.index(events[-1])
    assert all(msgs.index(e) in range(start, end + 1) for e in events)
    end_msg = events[-1]
    assert isinstance(end_msg, TurnEnd)
    if end_msg.status == "completed":
        deltas = "".join(e.text for e in events if e.type == "turn.delta")  # type: ignore[union-attr]
        replies = [e for e in events if e.type == "turn.reply"]
        assert len(replies) == 1 and replies[0].text == deltas  # type: ignore[union-attr]
    return events


def assert_seq(msgs: list[BotMessage]) -> None:
    """seq strictly increasing, no gaps, per recipient."""
    assert [m.seq for m in msgs if m.type != "chunk"] == list(range(1, len(msgs) + 1))


async def test_turn_streams_and_ends_completed(bot: Harness) -> None:
    bot.send("alice", chat(script(say="one two three four five"), id="m1"))
    msgs = await bot.turn_ends("alice")
    ack = msgs[0]
    assert isinstance(ack, Ack) and ack.status == "accepted" and ack.reply_to == "m1" and ack.turn
    events = assert_turn_well_formed(msgs, ack.turn)
    assert all(e.reply_to == "m1" for e in events)
    assert count(events, "turn.delta") >= 2
    end = events[-1]
    assert isinstance(end, TurnEnd) and end.usage and end.usage.completion_tokens > 0
    assert_seq(msgs)


def statuses(events: list[BotMessage]) -> list[str]:
    """The turn's events as the typing indicator sees them: each status, and where text
    started (the first delta) and tools ran."""
    seen: list[str] = []
    for e in events:
        if isinstance(e, TurnStatus):
            seen.append(e.state)
        elif e.type == "turn.delta" and "text" not in seen:
            seen.append("text")
        elif e.type == "turn.tool_call":
            seen.append("call")
    return seen


@pytest.mark.parametrize(
    ("after_ms", "delay", "expected"),
    [
        # the model answers before `thinking` is due: turn.start said it all, no status
        (60_000, 0.0, ["text"]),
        # the model keeps the user waiting: `thinking` goes out, before any text
        (10, 1.0, ["thinking", "text"]),
        # 0: at once, whatever the model does (as before the setting)
        (0, 0.0, ["thinking", "text"]),
    ],
)
async def test_thinking_is_sent_only_while_the_model_keeps_the_user_waiting(
    make_bot: MakeBot, after_ms: int, delay: float, expected: list[str]
) -> None:
    bot = await make_bot(thinking_after_ms=after_ms)
    bot.send("alice", chat(script(say="one two three", delay=delay), id="m1"))
    msgs = await bot.turn_ends("alice")
    events = assert_turn_well_formed(msgs, msgs[0].turn)  # type: ignore[union-attr]
    assert statuses(events) == expected
    assert_seq(msgs)


@pytest.mark.parametrize(
    ("after_ms", "delay", "expected"),
    [
        # a tool call is an answer too: no `thinking` before it; after the tool, the
        # model is asked again (`thinking` at once: the status moves on from `tool`)
        (60_000, 0.0, ["tool", "call", "thinking", "text"]),
        (10, 1.0, ["thinking", "tool", "call", "thinking", "text"]),
    ],
)
async def test_thinking_before_a_tool_call_only_while_waiting(
    make_bot: MakeBot, after_ms: int, delay: float, expected: list[str]
) -> None:
    bot = await make_bot(thinking_after_ms=after_ms)
    text = script(tool="calculate", args={"expression": "6*7"}, then="It is 42.", delay=delay)
    bot.send("alice", chat(text, id="m1"))
    msgs = await bot.turn_ends("alice")
    events = assert_turn_well_formed(msgs, msgs[0].turn)  # type: ignore[union-attr]
    assert statuses(events) == expected


class _Puts:
    """An outbox that keeps what it is given."""

    def __init__(self) -> None:
        self.types: list[str] = []

    def put(self, msg: BotMessage, topic: str) -> None:
        self.types.append(msg.type)


@pytest.mark.parametrize("answered", [True, False])
async def test_a_pending_thinking_never_comes_after_the_answer_or_the_end(
    answered: bool,
) -> None:
    """`thinking` not sent yet is dropped when the model answers, and when the turn ends
    first (cancelled, failed): nothing after turn.end. A timer due after the thinking
    timer has run when it fires (the loop runs timers in order): no wall-clock guess."""
    outbox = _Puts()
    emit = TurnEmitter(outbox, Turn(request_id="m1", text="hi", topic="lkbot"))  # type: ignore[arg-type]
    emit.start()
    emit.thinking_unless_answered(0.05)
    if answered:
        emit.answered()
        emit.delta("hi")
    emit.end("completed" if answered else "cancelled")
    await asyncio.sleep(0.1)  # past the thinking timer's due time
    assert outbox.types == ["turn.start", *(["turn.delta"] if answered else []), "turn.end"]


async def test_a_due_thinking_goes_out_before_the_answer() -> None:
    outbox = _Puts()
    emit = TurnEmitter(outbox, Turn(request_id="m1", text="hi", topic="lkbot"))  # type: ignore[arg-type]
    emit.start()
    emit.thinking_unless_answered(0.01)
    await asyncio.sleep(0.05)  # past its due time
    emit.answered()
    emit.delta("hi")
    emit.end("completed")
    assert outbox.types == ["turn.start", "turn.status", "turn.delta", "turn.end"]


async def test_usage_is_reported_only_when_the_endpoint_gives_it(bot: Harness) -> None:
    bot.send("alice", chat(script(say="no counts", usage=False), id="m1"))
    end = (await bot.turn_ends("alice"))[-1]
    assert isinstance(end, TurnEnd) and end.status == "completed" and end.usage is None


async def test_deltas_are_coalesced_but_still_add_up(make_bot: MakeBot) -> None:
    bot = await make_bot(delta_interval_ms=1000, delta_max_chars=16)
    # a character every 20 ms: the first one does not wait for 15 more, nor for 1 s
    bot.send("alice", chat(script(say="word " * 6, chunk=1, tps=50), id="m1"))
    msgs = await bot.turn_ends("alice")
    assert_turn_well_formed(msgs, msgs[0].turn)  # type: ignore[union-attr]
    deltas = [m.text for m in msgs if m.type == "turn.delta"]  # type: ignore[union-attr]
    assert len(deltas[0]) < 16  # the first text goes out at once
    assert 2 < len(deltas) < 30 and all(len(d) <= 16 for d in deltas)


async def test_tool_call_turn(bot: Harness, llm_server: ScriptedLLMServer) -> None:
    text = script(tool="calculate", args={"expression": "6*7"}, then="It is 42.")
    bot.send("alice", chat(text, id="m1"))
    msgs = await bot.turn_ends("alice")
    events = assert_turn_well_formed(msgs, msgs[0].turn)  # type: ignore[union-attr]
    types = [e.type for e in events]
    assert (
        types.index("turn.tool_call") < types.index("turn.tool_result") < types.index("turn.reply")
    )
    call = next(e for e in events if e.type == "turn.tool_call")
    result = next(e for e in events if e.type == "turn.tool_result")
    assert call.name == "calculate" and call.arguments == {"expression": "6*7"}  # type: ignore[union-attr]
    assert result.status == "ok" and '"result": 42' in (result.output or "")  # type: ignore[union-attr]
    assert result.call_id == call.call_id  # type: ignore[union-attr]
    assert events[-2].text == "It is 42."  # type: ignore[union-attr]
    # the model got the tool schema and, second time round, the tool output
    assert any(t["function"]["name"] == "calculate" for t in llm_server.requests[0]["tools"])
    assert llm_server.requests[1]["messages"][-1]["role"] == "tool"


async def test_tool_schemas_are_made_once_not_per_request(
    bot: Harness, llm_server: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """livekit-agents makes each tool's JSON schema (a pydantic model on the fly, ~1 ms
    a tool) for every LLM request; the engine hands it the schemas made at its start."""
    from livekit.agents import llm
    from livekit.agents.llm import utils

    made: list[object] = []
    real = utils.build_strict_openai_schema
    monkeypatch.setattr(utils, "build_strict_openai_schema", lambda t: made.append(t) or real(t))
    for i in range(2):
        text = script(tool="calculate", args={"expression": f"{i}+1"}, then="ok")
        bot.send("alice", chat(text, id=f"s{i}"))
        await bot.turn_ends("alice", i + 1)
    assert len(llm_server.requests) == 4  # two requests per turn: the call, then the result
    assert made == []
    # and what went out is what livekit-agents makes of the tools themselves
    expected = llm.ToolContext(bot.engine._tools).parse_function_tools("openai", strict=True)
    assert expected and all(r["tools"] == expected for r in llm_server.requests)


async def test_tool_schemas_are_made_once_per_process_not_per_room(
    bot: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each room has its own copy of the built-in tools (closures over that room); their
    schemas are the same, made for the first room only."""
    from livekit.agents.llm import utils

    from bot.llm.endpoint import build_llm
    from bot.llm.tools import load_tools
    from bot.turns import engine

    settings = bot.settings
    monkeypatch.setattr(engine, "_schemas", {}, raising=False)
    made: list[object] = []
    real = utils.build_strict_openai_schema
    monkeypatch.setattr(utils, "build_strict_openai_schema", lambda t: made.append(t) or real(t))
    rooms = [
        engine.TurnEngine(settings, build_llm(settings), load_tools(settings, lambda: []))
        for _ in range(3)
    ]
    assert len(made) == len(rooms[0]._tools) > 0  # once a tool, for the first room
    first, *others = [[t.info.raw_schema for t in e._described] for e in rooms]
    assert all(o == first for o in others)
    room0, room1 = ({t.info.name: t for t in e._tools} for e in rooms[:2])
    assert room1["participants"] is not room0["participants"]  # each room's own, still


async def test_sequential_and_parallel_tool_steps(bot: Harness) -> None:
    bot.send(
        "alice",
        chat(
            script(
                tools=[
                    {"name": "echo", "args": {"text": "a"}},
                    {"name": "echo", "args": {"text": "b"}},
                ]
            ),
            id="s",
        ),
    )
    bot.send(
        "alice",
        chat(
            script(parallel=[{"name": "echo", "args": {"text": "c"}}, {"name": "current_time"}]),
            id="p",
        ),
    )
    msgs = await bot.turn_ends("alice", 2)
    assert count(msgs, "turn.tool_result") == 4
    assert all(m.status == "ok" for m in msgs if m.type == "turn.tool_result")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("tool", "status"), [("boom", "error"), ("slow", "timeout"), ("nope", "error")]
)
async def test_tool_failures_become_results_not_crashes(
    make_bot: MakeBot, tool: str, status: str
) -> None:
    bot = await make_bot(tool_timeout=0.2)
    bot.send("alice", chat(script(tool=tool, then="recovered"), id="m1"))
    msgs = await bot.turn_ends("alice")
    events = assert_turn_well_formed(msgs, msgs[0].turn)  # type: ignore[union-attr]
    result = next(e for e in events if e.type == "turn.tool_result")
    assert result.status == status  # type: ignore[union-attr]
    assert "exploded" not in (result.output or "")  # type: ignore[union-attr]
    assert events[-1].status == "completed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("level", "has_args", "has_call"),
    [("full", True, True), ("name", False, True), ("hidden", False, False)],
)
async def test_tool_event_visibility(
    make_bot: MakeBot, level: str, has_args: bool, has_call: bool
) -> None:
    bot = await make_bot(tool_events={"echo": level})
    bot.send("alice", chat(script(tool="echo", args={"text": "secret"}), id="m1"))
    msgs = await bot.turn_ends("alice")
    calls = [m for m in msgs if m.type == "turn.tool_call"]
    results = [m for m in msgs if m.type == "turn.tool_result"]
    assert len(calls) == len(results) == int(has_call)
    if has_call:
        assert (calls[0].arguments is not None) == has_args  # type: ignore[union-attr]
        assert (results[0].output is not None) == has_args  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("opts", "code"),
    [
        ({"status": 500}, "llm_unavailable"),
        ({"status": 429}, "llm_unavailable"),
        ({"delay": 5}, "llm_timeout"),
        ({"stall": True}, "llm_timeout"),
    ],
)
async def test_llm_failures_end_the_turn_failed(
    make_bot: MakeBot, opts: dict[str, object], code: str
) -> None:
    bot = await make_bot(llm_timeout=0.3)
    bot.send("alice", chat(script(**opts), id="m1"))
    msgs = await bot.turn_ends("alice")
    end = assert_turn_well_formed(msgs, msgs[0].turn)[-1]  # type: ignore[union-attr]
    assert isinstance(end, TurnEnd) and end.status == "failed" and end.reason == code
    assert end.error and end.error.code == code and end.error.retryable
    bot.send("alice", chat("still there?", id="m2"))  # the bot keeps serving
    msgs = await bot.turn_ends("alice", 2)
    assert msgs[-1].status == "completed"  # type: ignore[union-attr]


async def test_unreachable_llm_is_unavailable(make_bot: MakeBot) -> None:
    bot = await make_bot(openai_base_url="http://127.0.0.1:9/v1")
    bot.send("alice", chat("hi", id="m1"))
    end = (await bot.turn_ends("alice"))[-1]
    assert isinstance(end, TurnEnd) and end.reason == "llm_unavailable"


async def test_duplicate_id_never_starts_a_second_turn(bot: Harness) -> None:
    body = chat("hello", id="dup")
    bot.send("alice", body)
    bot.send("alice", body)
    msgs = await bot.until(
        "alice", lambda ms: len(direct_answers(ms, "dup")) == 2 and count(ms, "turn.end") == 1
    )
    acks = direct_answers(msgs, "dup")
    assert [a.status for a in acks] == ["accepted", "duplicate"]  # type: ignore[union-attr]
    assert acks[0].turn == acks[1].turn  # type: ignore[union-attr]
    assert count(msgs, "turn.start") == 1
    bot.send("alice", chat("something else", id="dup"))
    err = await bot.until("alice", lambda ms: count(ms, "error") == 1)
    assert any(isinstance(m, Error) and m.code == "duplicate_conflict" for m in err)


async def test_queued_turns_run_in_arrival_order(bot: Harness) -> None:
    for i in range(3):
        bot.send("alice", chat(f"n{i}", id=f"q{i}"))
    msgs = await bot.turn_ends("alice", 3)
    acks = [direct_answers(msgs, f"q{i}")[0] for i in range(3)]
    assert [a.status for a in acks] == ["accepted", "queued", "queued"]  # type: ignore[union-attr]
    starts = [m.reply_to for m in msgs if m.type == "turn.start"]
    assert starts == ["q0", "q1", "q2"]
    for a in acks:  # one at a time: each turn ends before the next starts
        assert_turn_well_formed(msgs, a.turn)  # type: ignore[union-attr]
    ends = [i for i, m in enumerate(msgs) if m.type == "turn.end"]
    later_starts = [i for i, m in enumerate(msgs) if m.type == "turn.start"][1:]
    assert all(e < s for e, s in zip(ends, later_starts, strict=False))
    assert_seq(msgs)


async def test_on_busy_reject_and_full_queue(make_bot: MakeBot) -> None:
    bot = await make_bot(max_queue=1)
    bot.send("alice", chat(script(stall=True), id="run"))
    await bot.until("alice", lambda ms: count(ms, "turn.delta") >= 1)
    bot.send("alice", chat("x", id="rej", on_busy="reject"))
    bot.send("alice", chat("y", id="q1"))
    bot.send("alice", chat("z", id="q2"))
    msgs = await bot.until(
        "alice", lambda ms: all(direct_answers(ms, i) for i in ("rej", "q1", "q2"))
    )
    rej, q1, q2 = (direct_answers(msgs, i)[0] for i in ("rej", "q1", "q2"))
    assert isinstance(rej, Error) and rej.code == "busy" and rej.retryable
    assert q1.status == "queued"  # type: ignore[union-attr]
    assert isinstance(q2, Error) and q2.code == "busy"


async def test_on_busy_interrupt_cancels_the_running_turn(bot: Harness) -> None:
    bot.send("alice", chat(script(stall=True), id="a"))
    await bot.until("alice", lambda ms: count(ms, "turn.delta") >= 1)
    bot.send("alice", chat("new question", id="b", on_busy="interrupt"))
    msgs = await bot.turn_ends("alice", 2)
    first, second = (direct_answers(msgs, i)[0] for i in ("a", "b"))
    assert second.status == "accepted"  # type: ignore[union-attr]
    end_a = assert_turn_well_formed(msgs, first.turn)[-1]  # type: ignore[union-attr]
    end_b = assert_turn_well_formed(msgs, second.turn)[-1]  # type: ignore[union-attr]
    assert (end_a.status, end_a.reason) == ("cancelled", "interrupted")  # type: ignore[union-attr]
    assert end_b.status == "completed"  # type: ignore[union-attr]


async def test_cancel_running_queued_and_nothing(bot: Harness) -> None:
    bot.send("alice", msg("chat.cancel", id="c0"))
    assert (await bot.answer("alice", "c0")).status == "noop"  # type: ignore[union-attr]
    bot.send("alice", chat(script(stall=True), id="a"))
    bot.send("alice", chat("later", id="b"))
    msgs = await bot.until(
        "alice", lambda ms: count(ms, "turn.delta") >= 1 and len(direct_answers(ms, "b")) == 1
    )
    queued_turn = direct_answers(msgs, "b")[0].turn  # type: ignore[union-attr]
    bot.send("alice", msg("chat.cancel", id="c1", turn=queued_turn))
    bot.send("alice", msg("chat.cancel", id="c2"))
    msgs = await bot.turn_ends("alice", 2)
    assert direct_answers(msgs, "c1")[0].status == "cancelled"  # type: ignore[union-attr]
    assert direct_answers(msgs, "c2")[0].status == "cancelled"  # type: ignore[union-attr]
    for i in ("a", "b"):
        end = assert_turn_well_formed(msgs, direct_answers(msgs, i)[0].turn)[-1]  # type: ignore[union-attr]
        assert end.status == "cancelled"  # type: ignore[union-attr]


async def test_two_senders_run_concurrently_and_privately(bot: Harness) -> None:
    bot.send("alice", chat(script(stall=True), id="a1"))
    await bot.until("alice", lambda ms: count(ms, "turn.delta") >= 1)
    bot.send("bob", chat("bob here", id="b1"))  # completes while alice's turn is stuck
    bob = await bot.turn_ends("bob")
    assert bob[-1].status == "completed"  # type: ignore[union-attr]
    assert all(m.reply_to == "b1" for m in bob)
    assert all(m.reply_to == "a1" for m in bot.messages("alice"))
    assert count(bot.messages("alice"), "turn.end") == 0


async def test_history_get_page_and_reset(bot: Harness, llm_server: ScriptedLLMServer) -> None:
    for i in range(3):
        bot.send("alice", chat(f"question {i}", id=f"m{i}"))
    await bot.turn_ends("alice", 3)
    assert [m["role"] for m in llm_server.requests[-1]["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    bot.send("alice", msg("history.get", id="h1"))
    page = await bot.answer("alice", "h1")
    assert isinstance(page, HistoryPage) and not page.more
    assert [(i.role, i.text) for i in page.items[:2]] == [
        ("user", "question 0"),
        ("assistant", "You said: question 0"),
    ]
    bot.send("alice", msg("history.get", id="h2", limit=2, before=page.items[-1].turn))
    older = await bot.answer("alice", "h2")
    assert isinstance(older, HistoryPage) and older.more
    assert [i.text for i in older.items] == ["question 1", "You said: question 1"]
    bot.send("alice", msg("history.reset", id="r"))
    assert (await bot.answer("alice", "r")).status == "reset"  # type: ignore[union-attr]
    bot.send("alice", msg("history.get", id="h3"))
    assert (await bot.answer("alice", "h3")).items == []  # type: ignore[union-attr]


async def test_an_endless_stream_ends_at_the_turn_timeout(make_bot: MakeBot) -> None:
    """BOT_LLM_TIMEOUT bounds silence only; BOT_TURN_TIMEOUT bounds the whole turn."""
    bot = await make_bot(turn_timeout=1.0, llm_timeout=30)
    bot.send("alice", chat(script(tokens=10**6, tps=50), id="m1"))
    msgs = await bot.until("alice", lambda ms: count(ms, "turn.end") == 1, timeout=60)
    events = assert_turn_well_formed(msgs, msgs[0].turn)  # type: ignore[union-attr]
    assert count(events, "turn.delta") >= 1  # it was streaming when stopped
    end = events[-1]
    assert isinstance(end, TurnEnd) and end.status == "failed" and end.reason == "turn_timeout"
    assert end.error is not None and end.error.code == "llm_timeout" and end.error.retryable
    bot.send("alice", chat("still here?", id="m2"))  # the sender is served again
    assert (await bot.turn_ends("alice", 2))[-1].status == "completed"  # type: ignore[union-attr]


async def test_metadata_reaches_history_and_tools(bot: Harness) -> None:
    meta = {"client": "web", "tags": ["a", 1]}
    bot.send("alice", chat(script(tool="turn_metadata", then="ok"), id="m1", metadata=meta))
    bot.send("alice", chat("plain", id="m2"))
    msgs = await bot.turn_ends("alice", 2)
    result = next(m for m in msgs if m.type == "turn.tool_result")
    assert json.loads(result.output) == meta  # type: ignore[union-attr]
    bot.send("alice", msg("history.get", id="h"))
    page = await bot.answer("alice", "h")
    assert isinstance(page, HistoryPage)
    assert [i.metadata for i in page.items] == [meta, None, None, None]
    raw = bot.transport.sent["alice"][-1][1]
    assert raw.count('"metadata"') == 1  # left out where there is none


async def test_leaving_cancels_the_turn_and_releases_state(bot: Harness) -> None:
    bot.send("alice", chat(script(stall=True), id="a"))
    await bot.until("alice", lambda ms: count(ms, "turn.delta") >= 1)
    conv = bot.dispatcher.conversations["alice"]
    sent_before = len(bot.transport.sent["alice"])
    bot.transport.sink.on_participant_left("alice")  # type: ignore[union-attr]
    assert "alice" not in bot.dispatcher.conversations
    await asyncio.wait_for(conv.turns.wait_idle(5), 6)
    assert not conv.turns.busy
    assert len(bot.transport.sent["alice"]) == sent_before  # nothing sent to someone gone


async def test_shutdown_ends_running_turns(bot: Harness) -> None:
    bot.send("alice", chat(script(stall=True), id="a"))
    await bot.until("alice", lambda ms: count(ms, "turn.delta") >= 1)
    await bot.dispatcher.aclose()
    end = bot.messages("alice")[-1]
    assert isinstance(end, TurnEnd) and (end.status, end.reason) == ("cancelled", "shutdown")


async def test_long_reply_is_chunked_and_every_packet_fits(make_bot: MakeBot) -> None:
    bot = await make_bot(max_packet=4096, delta_max_chars=500, delta_interval_ms=50)
    bot.send("alice", chat(script(long=50000, chunk=700), id="m"))
    msgs = await bot.turn_ends("alice")
    events = assert_turn_well_formed(msgs, msgs[0].turn)  # type: ignore[union-attr]
    assert len(events[-2].text) == 50000  # type: ignore[union-attr]
    raw = [p for _, p in bot.transport.sent["alice"]]
    assert max(len(p.encode()) for p in raw) <= 4096
    assert_seq(msgs)
