"""Tools that run only after the user said yes (protocol v1.1): the turn asks with
`tool.approval_request`, waits for `tool.approve` (not counting against its own time
limit), and settles the call `denied` or `expired` without running the tool."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.protocol.outbound import (
    Ack,
    BotMessage,
    SessionReady,
    ToolApprovalRequest,
    TurnEnd,
    TurnStatus,
    TurnToolResult,
)
from bot.state.clock import now_ms

from .conftest import MakeBot
from .harness import Harness, assert_settled_once, chat, count, direct_answers, msg, script
from .rig import Rig, explore, rig_fixture

ECHO = script(tool="echo", args={"text": "ran"}, then="done")


def requests(msgs: list[BotMessage]) -> list[ToolApprovalRequest]:
    return [m for m in msgs if isinstance(m, ToolApprovalRequest)]


def asked_calls(msgs: list[BotMessage]) -> list[str]:
    """The call ids asked about, in order, once each (a request may be sent again)."""
    return list(dict.fromkeys(r.call_id for r in requests(msgs)))


def results(msgs: list[BotMessage]) -> list[TurnToolResult]:
    return [m for m in msgs if isinstance(m, TurnToolResult)]


async def asked(bot: Harness, who: str = "alice", text: str = ECHO) -> ToolApprovalRequest:
    bot.send(who, chat(text))
    msgs = await bot.until(who, lambda ms: len(requests(ms)) > 0)
    return requests(msgs)[-1]


async def approve(bot: Harness, call_id: str, ok: bool, who: str = "alice", **more: Any) -> str:
    msg_id = f"ap-{call_id}-{ok}-{who}-{len(bot.messages(who))}"
    bot.send(who, msg("tool.approve", id=msg_id, call_id=call_id, approved=ok, **more))
    answer = await bot.answer(who, msg_id)
    assert isinstance(answer, Ack)
    return answer.status


async def test_an_approved_call_runs(make_bot: MakeBot) -> None:
    bot = await make_bot(approval_tools="echo")
    bot.send("alice", msg("session.hello", id="h"))
    ready = await bot.answer("alice", "h")
    assert isinstance(ready, SessionReady) and "approval" in ready.features
    assert {t.name: t.approval for t in ready.tools}["echo"] is True
    assert {t.name: t.approval for t in ready.tools}["calculate"] is False

    request = await asked(bot)
    assert request.name == "echo" and request.arguments == {"text": "ran"}
    assert request.expires_at > now_ms()
    msgs = bot.messages("alice")
    assert any(isinstance(m, TurnStatus) and m.state == "awaiting_approval" for m in msgs)
    assert results(msgs) == []  # nothing ran yet
    assert await approve(bot, request.call_id, True) == "accepted"
    msgs = await bot.turn_ends("alice")
    (settled,) = results(msgs)
    assert (settled.call_id, settled.status, settled.output) == (request.call_id, "ok", "ran")
    assert await approve(bot, request.call_id, True) == "duplicate"
    assert await approve(bot, "no-such-call", True) == "noop"


async def test_a_denied_call_does_not_run_and_the_model_is_told(make_bot: MakeBot) -> None:
    bot = await make_bot(approval_tools="*")
    request = await asked(bot)
    assert await approve(bot, request.call_id, False, reason="not now") == "accepted"
    msgs = await bot.turn_ends("alice")
    (settled,) = results(msgs)
    assert settled.status == "denied" and "not now" in (settled.output or "")
    end = msgs[-1]
    assert isinstance(end, TurnEnd) and end.status == "completed"


async def test_an_unanswered_request_expires(make_bot: MakeBot) -> None:
    bot = await make_bot(approval_tools="echo", approval_timeout=0.3)
    request = await asked(bot)
    msgs = await bot.turn_ends("alice")
    (settled,) = results(msgs)
    assert settled.status == "expired"
    assert await approve(bot, request.call_id, True) == "noop"


async def test_only_the_sender_can_answer_and_a_cancel_settles_the_call(make_bot: MakeBot) -> None:
    bot = await make_bot(approval_tools="echo")
    request = await asked(bot)
    assert await approve(bot, request.call_id, True, who="bob") == "noop"
    bot.send("alice", msg("chat.cancel", id="c"))
    msgs = await bot.turn_ends("alice")
    (settled,) = results(msgs)
    assert settled.status == "cancelled"
    assert msgs.index(settled) < len(msgs) - 1


async def test_the_wait_does_not_count_against_the_turns_time_limit(make_bot: MakeBot) -> None:
    bot = await make_bot(approval_tools="echo", turn_timeout=2)
    request = await asked(bot)
    await asyncio.sleep(3)  # the person takes longer than the turn may
    assert await approve(bot, request.call_id, True) == "accepted"
    end = (await bot.turn_ends("alice"))[-1]
    assert isinstance(end, TurnEnd) and end.status == "completed", end


async def test_a_client_tool_that_needs_approval_is_asked_first(make_bot: MakeBot) -> None:
    bot = await make_bot(approval_tools="get_location")
    tool = {"name": "get_location", "description": "where", "parameters": {"type": "object"}}
    bot.send("alice", msg("session.hello", id="h", tools=[tool]))
    ready = await bot.answer("alice", "h")
    assert isinstance(ready, SessionReady)
    assert {t.name: t.approval for t in ready.tools}["get_location"] is True
    request = await asked(bot, text=script(tool="get_location"))
    assert count(bot.messages("alice"), "tool.call") == 0  # not before the user said yes
    assert await approve(bot, request.call_id, True) == "accepted"
    msgs = await bot.until("alice", lambda ms: count(ms, "tool.call") == 1)
    call = next(m for m in msgs if m.type == "tool.call")
    bot.send("alice", msg("tool.result", id="r", call_id=call.call_id, output="Lyon"))  # type: ignore[union-attr]
    msgs = await bot.turn_ends("alice")
    assert [r.status for r in results(msgs)] == ["ok"]


# -- invariant 8 with approvals: each request settled exactly once, inside its turn --

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def rig() -> Any:
    yield from rig_fixture(approval_tools="*", approval_timeout=0.5, rate_burst=10_000)


@explore(30)
@given(
    plan=st.lists(
        st.sampled_from(["yes", "no", "twice", "stranger", "cancel", "nothing", "leave"]),
        min_size=1,
        max_size=3,
    )
)
def test_every_approval_request_is_settled_exactly_once(rig: Rig, plan: list[str]) -> None:
    """`leave`: the sender leaves while asked and starts over (a page reload): the turn
    waits on in the store and the request comes again; it is still settled once."""

    async def scenario() -> None:
        dispatcher, transport = rig.transport_bot
        me = f"u{next(_ids)}"
        steps = [{"name": "echo", "args": {"text": f"r{i}"}} for i in range(len(plan))]
        transport.inject(me, chat(script(tools=steps), id=f"{me}-m"))
        for i, action in enumerate(plan):
            got = await transport.wait_for(
                me, lambda ms, i=i: len(asked_calls(ms)) > i or count(ms, "turn.end") > 0
            )
            if count(got, "turn.end"):
                break
            call_id = asked_calls(got)[i]
            answer = msg("tool.approve", id=f"{me}-a{i}", call_id=call_id, approved=action != "no")
            if action in ("yes", "no", "twice"):
                transport.inject(me, answer)
            if action == "twice":
                transport.inject(me, {**answer, "id": f"{me}-a{i}b"})
            if action == "stranger":
                transport.inject(f"{me}-x", answer)
            if action == "cancel":
                transport.inject(me, msg("chat.cancel", id=f"{me}-c{i}"))
            if action == "leave":
                dispatcher.on_participant_left(me)
                transport.inject(me, msg("session.hello", id=f"{me}-h{i}"))
                transport.inject(me, answer)
        msgs = await transport.wait_for(me, lambda ms: count(ms, "turn.end") == 1, 30)
        assert_settled_once(msgs, requests(msgs), plan)
        accepted = [
            a
            for a in msgs
            if isinstance(a, Ack) and a.status == "accepted" and a.reply_to and "-a" in a.reply_to
        ]
        assert len(accepted) <= len(asked_calls(msgs))
        # leaving while asked never ended the turn (invariant 9)
        assert all(m.reason != "participant_left" for m in msgs if isinstance(m, TurnEnd))
        assert not direct_answers(msgs, f"{me}-x")

    rig.run(scenario())
