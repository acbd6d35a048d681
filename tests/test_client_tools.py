"""Tools a client runs itself (protocol v1.1): declared in session.hello, offered in
that sender's turns only, called with `tool.call`, answered with `tool.result`.
Through the real dispatcher and the scripted LLM over real HTTP."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.protocol.outbound import (
    Ack,
    BotMessage,
    Error,
    SessionReady,
    ToolCall,
    TurnEnd,
    TurnReply,
    TurnToolResult,
)

from .conftest import MakeBot
from .harness import Harness, assert_settled_once, chat, count, direct_answers, msg, script
from .rig import Rig, explore, rig_fixture

LOCATE = {
    "name": "get_location",
    "description": "Where the user is (the app asks the device).",
    "parameters": {"type": "object", "properties": {"precise": {"type": "boolean"}}},
}


async def hello(bot: Harness, who: str, tools: list[dict[str, Any]]) -> BotMessage:
    bot.send(who, msg("session.hello", id=f"h-{who}", tools=tools))
    return await bot.answer(who, f"h-{who}")


def calls(msgs: list[BotMessage]) -> list[ToolCall]:
    return [m for m in msgs if isinstance(m, ToolCall)]


async def test_a_client_tool_is_called_and_its_result_shapes_the_reply(bot: Harness) -> None:
    ready = await hello(bot, "alice", [LOCATE])
    assert isinstance(ready, SessionReady)
    assert "client_tools" in ready.features
    mine = [t for t in ready.tools if t.name == "get_location"]
    assert mine and mine[0].source == "client" and not mine[0].approval
    assert {t.source for t in ready.tools if t.name != "get_location"} == {"server"}
    assert ready.limits.tool_result_timeout_ms == 30_000

    bot.send("alice", chat(script(tool="get_location", args={"precise": True}), id="m1"))
    msgs = await bot.until("alice", lambda ms: bool(calls(ms)))
    (call,) = calls(msgs)
    assert call.name == "get_location" and call.arguments == {"precise": True}
    assert call.reply_to == "m1" and call.turn
    bot.send("alice", msg("tool.result", id="r1", call_id=call.call_id, output={"city": "Paris"}))
    assert (await bot.answer("alice", "r1")).status == "accepted"  # type: ignore[union-attr]
    msgs = await bot.turn_ends("alice")
    result = next(m for m in msgs if isinstance(m, TurnToolResult))
    assert result.call_id == call.call_id and result.status == "ok"
    reply = next(m for m in msgs if isinstance(m, TurnReply))
    assert reply.text == 'Tool results: {"city": "Paris"}'
    # once settled, a repeat is a duplicate, an unknown call a noop: nothing changes
    bot.send("alice", msg("tool.result", id="r2", call_id=call.call_id, output="again"))
    assert (await bot.answer("alice", "r2")).status == "duplicate"  # type: ignore[union-attr]
    bot.send("alice", msg("tool.result", id="r3", call_id="nope", output=1))
    assert (await bot.answer("alice", "r3")).status == "noop"  # type: ignore[union-attr]
    assert count(bot.messages("alice"), "turn.end") == 1


async def test_only_its_sender_sees_offers_and_answers_a_client_tool(bot: Harness) -> None:
    await hello(bot, "alice", [LOCATE])
    ready = await hello(bot, "bob", [])
    assert "get_location" not in [t.name for t in ready.tools]  # type: ignore[union-attr]
    bot.send("alice", chat(script(tool="get_location"), id="a1"))
    (call,) = calls(await bot.until("alice", lambda ms: bool(calls(ms))))
    # bob cannot answer alice's call
    bot.send("bob", msg("tool.result", id="b-r", call_id=call.call_id, output="Mars"))
    assert (await bot.answer("bob", "b-r")).status == "noop"  # type: ignore[union-attr]
    # a model that calls alice's tool in bob's turn: no tool.call goes anywhere
    bot.send("bob", chat(script(tool="get_location"), id="b1"))
    msgs = await bot.turn_ends("bob")
    assert calls(msgs) == [] and len(calls(bot.messages("alice"))) == 1
    result = next(m for m in msgs if isinstance(m, TurnToolResult))
    assert result.status == "error"
    bot.send(
        "alice",
        msg("tool.result", id="a-r", call_id=call.call_id, error={"message": "denied by the OS"}),
    )
    msgs = await bot.turn_ends("alice")
    result = next(m for m in msgs if isinstance(m, TurnToolResult))
    assert result.status == "error" and result.output == "denied by the OS"


async def test_an_unanswered_call_times_out_and_a_late_result_is_a_noop(make_bot: MakeBot) -> None:
    bot = await make_bot(client_tool_timeout=0.3)
    await hello(bot, "alice", [LOCATE])
    bot.send("alice", chat(script(tool="get_location", then="No location."), id="m"))
    msgs = await bot.turn_ends("alice")
    (call,) = calls(msgs)
    result = next(m for m in msgs if isinstance(m, TurnToolResult))
    assert result.call_id == call.call_id and result.status == "timeout"
    end = msgs[-1]
    assert isinstance(end, TurnEnd) and end.status == "completed"
    bot.send("alice", msg("tool.result", id="late", call_id=call.call_id, output=1))
    assert (await bot.answer("alice", "late")).status == "noop"  # type: ignore[union-attr]


async def test_a_cancelled_turn_settles_its_call_before_its_end(bot: Harness) -> None:
    await hello(bot, "alice", [LOCATE])
    bot.send("alice", chat(script(tool="get_location"), id="m"))
    (call,) = calls(await bot.until("alice", lambda ms: bool(calls(ms))))
    bot.send("alice", msg("chat.cancel", id="c"))
    msgs = await bot.turn_ends("alice")
    settled = [m for m in msgs if isinstance(m, TurnToolResult) and m.call_id == call.call_id]
    assert [m.status for m in settled] == ["cancelled"]
    assert msgs.index(settled[0]) < msgs.index(msgs[-1])
    bot.send("alice", msg("tool.result", id="r", call_id=call.call_id, output=1))
    assert (await bot.answer("alice", "r")).status == "noop"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("tools", "code"),
    [
        ([LOCATE] * 2, "invalid_message"),  # the same name twice
        ([{**LOCATE, "name": "calculate"}], "invalid_message"),  # one of the bot's own
        ([{**LOCATE, "name": f"t{i}"} for i in range(17)], "payload_too_large"),
        (
            [{**LOCATE, "description": "x" * 1000, "parameters": {"d": "y" * 9000}}],
            "payload_too_large",
        ),
        ([{**LOCATE, "parameters": {"type": "string"}}], "invalid_message"),
        ([{**LOCATE, "name": "has space"}], "invalid_message"),
    ],
)
async def test_declarations_past_the_limits_are_refused(
    bot: Harness, tools: list[dict[str, Any]], code: str
) -> None:
    answer = await hello(bot, "alice", tools)
    assert isinstance(answer, Error) and answer.code == code
    ready = await hello(bot, "bob", [LOCATE])  # nothing of alice's changed anything
    assert isinstance(ready, SessionReady)


async def test_a_result_too_large_is_refused_and_the_call_still_waits(bot: Harness) -> None:
    await hello(bot, "alice", [LOCATE])
    bot.send("alice", chat(script(tool="get_location"), id="m"))
    (call,) = calls(await bot.until("alice", lambda ms: bool(calls(ms))))
    big = {"blob": "z" * 40_000}  # chunked on the way in, refused by size
    whole = json.dumps(msg("tool.result", id="big", call_id=call.call_id, output=big))
    frames = [whole[i : i + 10_000] for i in range(0, len(whole), 10_000)]
    for n, data in enumerate(frames, start=1):
        bot.send("alice", msg("chunk", id=f"big.{n}", of="big", n=n, total=len(frames), data=data))
    refused = await bot.answer("alice", "big")
    assert isinstance(refused, Error) and refused.code == "payload_too_large"
    bot.send("alice", msg("tool.result", id="ok", call_id=call.call_id, output="small"))
    assert (await bot.answer("alice", "ok")).status == "accepted"  # type: ignore[union-attr]
    await bot.turn_ends("alice")


# -- invariant 8, explored: every tool.call settled exactly once, inside its turn --

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def rig() -> Any:
    yield from rig_fixture(client_tool_timeout=0.5, rate_burst=10_000)


answers = st.lists(
    st.sampled_from(["ok", "error", "repeat", "late", "stranger", "cancel", "nothing"]),
    min_size=1,
    max_size=3,
)


@explore(30)
@given(plan=answers, parallel=st.booleans())
def test_every_client_call_is_settled_exactly_once(
    rig: Rig, plan: list[str], parallel: bool
) -> None:
    async def scenario() -> None:
        _, transport = rig.transport_bot
        me = f"u{next(_ids)}"
        tools = [{**LOCATE, "name": f"t{i}"} for i in range(len(plan))]
        transport.inject(me, msg("session.hello", id=f"{me}-h", tools=tools))
        await transport.wait_for(me, lambda ms: bool(direct_answers(ms, f"{me}-h")))
        steps = [{"name": t["name"], "args": {"i": i}} for i, t in enumerate(tools)]
        body = script(parallel=steps) if parallel else script(tools=steps)
        transport.inject(me, chat(body, id=f"{me}-m"))
        for i, action in enumerate(plan):
            got = await transport.wait_for(
                me, lambda ms, i=i: len(calls(ms)) > i or count(ms, "turn.end") > 0
            )
            if count(got, "turn.end"):
                break
            call = calls(got)[i]
            result = msg("tool.result", id=f"{me}-r{i}", call_id=call.call_id, output=action)
            if action in ("ok", "repeat"):
                transport.inject(me, result)
            if action == "repeat":
                transport.inject(me, {**result, "id": f"{me}-r{i}b"})
            if action == "error":
                transport.inject(me, {**result, "output": None, "error": {"message": "no"}})
            if action == "stranger":
                transport.inject(f"{me}-x", result)
            if action == "cancel":
                transport.inject(me, msg("chat.cancel", id=f"{me}-c{i}"))
        msgs = await transport.wait_for(me, lambda ms: count(ms, "turn.end") == 1, 30)
        if "late" in plan:
            for c in calls(msgs):
                transport.inject(
                    me, msg("tool.result", id=f"{me}-L{c.call_id}", call_id=c.call_id, output=0)
                )
                await transport.wait_for(
                    me, lambda ms, c=c: bool(direct_answers(ms, f"{me}-L{c.call_id}"))
                )
        msgs = transport.messages(me)
        assert_settled_once(msgs, calls(msgs), plan)
        assert count(msgs, "turn.end") == 1
        acks = [m for m in msgs if isinstance(m, Ack) and m.status == "accepted" and m.turn is None]
        assert len(acks) <= len(calls(msgs))  # a result is taken once per call

    rig.run(scenario())
