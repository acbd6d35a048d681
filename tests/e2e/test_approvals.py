"""A pending approval outlives the worker (invariant 9), over a real livekit-server: the
worker that asked is killed (kill -9) between the request and the answer; the next
worker's bot continues the turn from the store (SQLite or Redis), and the user's
`tool.approve`, sent to it, runs the tool and ends the turn. (The page reload is in the
browser suite: clients/js/test/approval.test.mjs.)"""

from __future__ import annotations

import signal
import uuid

import pytest

from bot.client.bot_client import BotClient
from bot.dev.livekit_server import DevServer
from bot.protocol.outbound import Ack, ToolApprovalRequest, TurnEnd, TurnReply, TurnToolResult

from ..harness import script
from .test_dispatch import BOUND, _join, _kill
from .test_durable import _store, _worker

pytestmark = pytest.mark.e2e


ASK = script(say="Checking.", tool="echo", args={"text": "approved and ran"}, then="Done.")


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_an_approval_survives_a_kill_9_of_the_worker_that_asked(
    own_lk: DevServer,
    llm_url: str,
    clients: list[BotClient],
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    store = _store(kind, request)
    first = _worker(own_lk, llm_url, store, approval_tools="echo")
    second = None
    try:
        alice = await _join(own_lk, f"approve-{uuid.uuid4().hex[:6]}", "alice", clients)
        old = await alice.wait_bot(timeout=BOUND)
        answer = await alice.request("chat.message", text=ASK)
        assert isinstance(answer, Ack) and answer.turn is not None
        turn = answer.turn
        await alice.wait_for(lambda ms: any(isinstance(m, ToolApprovalRequest) for m in ms), BOUND)
        asked = next(m for m in alice.messages if isinstance(m, ToolApprovalRequest))
        _kill(first, signal.SIGKILL)  # between the request and the answer

        second = _worker(own_lk, llm_url, store, approval_tools="echo")
        await alice.wait_bot(exclude=old, timeout=BOUND)  # resumes with the new bot
        ack = await alice.approve(asked.call_id, True)
        assert isinstance(ack, Ack) and ack.status == "accepted", ack
        await alice.wait_for(
            lambda _: any(e.type == "turn.end" for e in alice.turn_events(turn)), BOUND
        )
        events = alice.turn_events(turn)
        (end,) = [e for e in events if isinstance(e, TurnEnd)]
        assert end.status == "completed", end
        results = [(e.call_id, e.status, e.output) for e in events if isinstance(e, TurnToolResult)]
        assert results == [(asked.call_id, "ok", "approved and ran")]
        (reply,) = [e for e in events if isinstance(e, TurnReply)]
        assert reply.text == "Checking.\n\nDone."
        deltas = "".join(e.text for e in events if e.type == "turn.delta")  # type: ignore[attr-defined]
        assert deltas == reply.text  # streamed by two workers, one reply
        assert [e.type for e in events].count("turn.start") == 1
        seqs = [m.seq for m in alice.messages]
        assert seqs == list(range(1, len(seqs) + 1))
        assert (await alice.approve(asked.call_id, True)).status == "duplicate"  # type: ignore[union-attr]
    finally:
        first.stop()
        if second is not None:
            second.stop()
