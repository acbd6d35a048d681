"""A pending approval outlives the connection and the worker (invariant 9): the turn is
suspended into the store with its call; the sender leaving (a page reload) or the
worker dying does not end it, and `tool.approve` reaching the conversation's next
writer continues the turn with the model's context as it was."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from livekit.agents import llm

from bot.protocol.outbound import BotMessage, SessionReady, ToolApprovalRequest, TurnEnd, TurnReply
from bot.store import ConversationKey, open_store
from bot.store.model import Changes, Lease, now_ms
from bot.turns.suspension import Suspension

from .conftest import MakeBot, OpenStore
from .harness import Harness, count, msg, script
from .test_approvals import approve, asked, results

KEY = ConversationKey("r", "alice")
# a text, a tool that needs no approval, then one that does; the model's last answer
# lists both outputs: it sees them only if the continued turn replayed its context
STEPS = script(
    say="Let me check.",
    tools=[
        {"name": "calculate", "args": {"expression": "6*7"}},
        {"name": "echo", "args": {"text": "ran"}},
    ],
)
REPLY = 'Let me check.\n\nTool results: {"expression": "6*7", "result": 42}; ran'


def deltas(msgs: list[BotMessage], turn: str) -> str:
    return "".join(m.text for m in msgs if m.type == "turn.delta" and m.turn == turn)  # type: ignore[union-attr]


def last_seq(bot: Harness, who: str = "alice") -> int:
    return max(m.seq for m in bot.messages(who) if m.seq)


def ends(msgs: list[BotMessage]) -> list[TurnEnd]:
    return [m for m in msgs if isinstance(m, TurnEnd)]


async def suspended_in_store(bot: Harness, who: str = "alice") -> None:
    await bot.dispatcher.conversations[who].journal.flush()


async def test_an_approval_survives_the_sender_leaving_and_starting_over(
    make_bot: MakeBot,
) -> None:
    """A page reload: the participant leaves, joins again and says hello without a
    resume. The request comes again (same call_id) and the answer continues the turn."""
    bot = await make_bot(approval_tools="echo", room="r")
    request = await asked(bot, text=STEPS)
    turn = request.turn
    bot.dispatcher.on_participant_left("alice")
    bot.send("alice", msg("session.hello", "h2"))
    msgs = await bot.until("alice", lambda ms: count(ms, "tool.approval_request") == 2)
    again = [m for m in msgs if isinstance(m, ToolApprovalRequest)][-1]
    assert (again.call_id, again.turn, again.expires_at) == (
        request.call_id,
        turn,
        request.expires_at,
    )
    assert isinstance(await bot.answer("alice", "h2"), SessionReady)
    assert msgs.index(next(m for m in msgs if m.reply_to == "h2")) < msgs.index(again)
    assert await approve(bot, request.call_id, True) == "accepted"
    msgs = await bot.turn_ends("alice")
    assert [(e.turn, e.status) for e in ends(msgs)] == [(turn, "completed")]
    assert [(r.call_id, r.status) for r in results(msgs)][-1] == (request.call_id, "ok")
    reply = next(m for m in msgs if isinstance(m, TurnReply))
    assert reply.text == REPLY
    assert deltas(msgs, turn) == reply.text  # invariant 3 across the two conversations
    assert count(msgs, "turn.start") == 1


async def test_an_approval_survives_the_worker_dying(
    make_bot: MakeBot, open_same: OpenStore
) -> None:
    """The first bot asks and is never heard from again (kill -9: it is fenced off by
    the next claim). A second worker's bot, on the same store, continues the turn when
    the client resumes and answers it."""
    stores = [open_same(), open_same()]  # two workers' connections to one store
    first = await make_bot(approval_tools="echo", room="r", store=stores[0])
    first.send("alice", msg("session.hello", "h1"))
    request = await asked(first, text=STEPS)
    seen = last_seq(first)
    await suspended_in_store(first)

    second = await make_bot(approval_tools="echo", room="r", store=stores[1])
    second.send("alice", msg("session.hello", "h2", resume={"last_seq": seen}))
    assert isinstance(await second.answer("alice", "h2"), SessionReady)
    assert await approve(second, request.call_id, True) == "accepted"
    after = await second.turn_ends("alice")
    # what the client holds: the first bot's messages, then the second's
    msgs = first.messages("alice") + [m for m in after if (m.seq or 0) > seen]
    assert [(e.turn, e.status) for e in ends(msgs)] == [(request.turn, "completed")]
    assert [r.status for r in results(msgs)] == ["ok", "ok"]  # calculate, then echo
    reply = next(m for m in msgs if isinstance(m, TurnReply))
    assert reply.text == REPLY
    assert deltas(msgs, request.turn) == reply.text
    seqs = [m.seq for m in msgs if m.seq]
    assert seqs == list(range(1, max(seqs) + 1))  # one run of seqs across both workers
    await first.close()  # its writes are refused: nothing more reaches the client
    assert count(first.messages("alice"), "turn.end") == 0
    await second.close()
    assert (await stores[1].load(KEY)).leases == []
    for store in stores:
        await store.aclose()


async def test_a_request_that_expired_while_nobody_held_it_is_settled_expired(
    make_bot: MakeBot,
) -> None:
    """The sender left while asked and comes back after the request expired: the turn
    goes on at once, the call settled `expired`."""
    bot = await make_bot(approval_tools="echo", room="r", approval_timeout=0.2)
    request = await asked(bot, text=script(tool="echo", args={"text": "x"}, then="ok"))
    bot.dispatcher.on_participant_left("alice")
    await asyncio.sleep(max(0.0, (request.expires_at - now_ms()) / 1000) + 0.05)
    bot.send("alice", msg("session.hello", "h2"))
    msgs = await bot.turn_ends("alice")
    assert [r.status for r in results(msgs)] == ["expired"]
    assert [(e.turn, e.status) for e in ends(msgs)] == [(request.turn, "completed")]
    assert count(msgs, "tool.approval_request") == 1  # not asked again: it expired
    assert await approve(bot, request.call_id, True) == "noop"


async def test_a_cancel_by_the_user_still_ends_a_waiting_turn(make_bot: MakeBot) -> None:
    """Only the bot's side (the sender left, the bot leaves) keeps a waiting turn; the
    user's own cancel or interrupt ends it, and the store forgets it."""
    store = open_store("memory")
    bot = await make_bot(approval_tools="echo", room="r", store=store)
    request = await asked(bot)
    bot.send("alice", msg("chat.message", "m2", text="never mind", on_busy="interrupt"))
    msgs = await bot.turn_ends("alice")
    assert next((e.turn, e.status, e.reason) for e in ends(msgs)) == (
        request.turn,
        "cancelled",
        "interrupted",
    )
    await bot.turn_ends("alice", 2)
    await suspended_in_store(bot)
    assert (await store.load(KEY)).leases == []


async def test_a_bot_handing_the_room_over_leaves_the_waiting_turn_to_the_next(
    make_bot: MakeBot,
) -> None:
    store = open_store("memory")
    first = await make_bot(approval_tools="echo", room="r", store=store)
    request = await asked(first)
    await asyncio.wait_for(first.dispatcher.hand_over(timeout=30), 30)  # not held up by it
    await first.close()
    assert count(first.messages("alice"), "turn.end") == 0
    second = await make_bot(approval_tools="echo", room="r", store=store)
    second.send("alice", msg("session.hello", "h2", resume={"last_seq": last_seq(first)}))
    await second.answer("alice", "h2")
    assert await approve(second, request.call_id, False) == "accepted"
    msgs = await second.turn_ends("alice")
    assert [r.status for r in results(msgs)] == ["denied"]


_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    *("step", "reply", "items", "calls", "expires_at", "call_id", "name"),
                    *("arguments", "say", "call", "output", "text", "error"),
                ]
            ),
            inner,
            max_size=8,
        )
    ),
    max_leaves=16,
)


@given(stored=_ANY_JSON)
def test_a_stored_suspension_is_read_back_or_refused_never_half(stored: Any) -> None:
    """Whatever the store holds as a turn's suspension (a bug, an old version, a hand):
    it reads back as a whole suspension whose items replay, or as none (the turn then
    ends `interrupted`, below); it never raises."""
    parsed = Suspension.from_json(stored)
    if parsed is not None:
        assert parsed.calls and parsed.function_calls()
        ctx = llm.ChatContext.empty()
        parsed.replay(ctx)
        assert len(ctx.items) == len(parsed.items)
        assert Suspension.from_json(parsed.to_json()) == parsed


async def test_garbage_in_a_stored_suspension_ends_the_turn_interrupted(
    make_bot: MakeBot,
) -> None:
    store = open_store("memory")
    lease = Lease("t_x", "c1", "lkbot", "gone:1:x", now_ms(), {"step": "?", "calls": 3})
    await store.apply(KEY, Changes(seq=3, leases={"t_x": lease}))
    bot = await make_bot(room="r", store=store)
    bot.send("alice", msg("session.hello", "h"))
    msgs = await bot.turn_ends("alice")
    assert [(e.turn, e.reason) for e in ends(msgs)] == [("t_x", "interrupted")]
