"""Conversations outlive their worker, on a real livekit-server with real clients: a
worker stopped (SIGTERM) or killed (kill -9) mid-conversation is replaced and the user
goes on with history, seq and dedupe intact; on SQLite and on Redis; and two workers
sharing Redis, one killed, the other continuing. On a livekit-server of their own."""

from __future__ import annotations

import asyncio
import signal
import tempfile
import uuid
from pathlib import Path

import pytest
from aiohttp import web
from redis.asyncio import Redis

from bot.client.bot_client import BotClient
from bot.dev.livekit_server import DevServer
from bot.protocol.outbound import Ack, HistoryPage, TurnEnd
from bot.testing.llm_server import ScriptedLLMServer

from ..harness import script
from .procs import Proc, start_worker
from .test_dispatch import BOUND, _join, _kill

pytestmark = pytest.mark.e2e


def _store(kind: str, request: pytest.FixtureRequest) -> str:
    if kind == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"sqlite://{Path(tempfile.mkdtemp(prefix='lkbot-store-')) / 'c.db'}"


def _worker(lk: DevServer, llm_url: str, store: str, **settings: str) -> Proc:
    return start_worker(lk, llm_url, watchdog_interval="1", store=store, **settings)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
async def test_a_new_worker_continues_the_conversation(
    own_lk: DevServer,
    llm_url: str,
    clients: list[BotClient],
    request: pytest.FixtureRequest,
    kind: str,
    how: signal.Signals,
) -> None:
    store = _store(kind, request)
    first = _worker(own_lk, llm_url, store)
    try:
        alice = await _join(own_lk, f"durable-{uuid.uuid4().hex[:6]}", "alice", clients)
        old = await alice.wait_bot(timeout=BOUND)
        done = await alice.chat("before the restart")
        first_id = done.request_id
        answer = await alice.request("chat.message", text=script(stall=True))
        turn = answer.turn  # type: ignore[union-attr]
        await alice.wait_for(lambda _: any(e.type == "turn.delta" for e in alice.turn_events(turn)))
        _kill(first, how)  # mid-turn
    finally:
        first.stop()
    second = _worker(own_lk, llm_url, store)
    try:
        await alice.wait_bot(exclude=old, timeout=BOUND)
        await alice.wait_for(
            lambda _: any(e.type == "turn.end" for e in alice.turn_events(turn)), BOUND
        )
        ends = [e for e in alice.turn_events(turn) if isinstance(e, TurnEnd)]
        want = ("failed", "interrupted") if how == signal.SIGKILL else ("cancelled", "shutdown")
        assert [(e.status, e.reason) for e in ends] == [want]
        page = await alice.request("history.get")
        assert isinstance(page, HistoryPage)
        assert [i.text for i in page.items] == [
            "before the restart",
            "You said: before the restart",
            script(stall=True),
        ]
        seqs = [m.seq for m in alice.messages]
        assert seqs == list(range(1, len(seqs) + 1))  # one conversation, no gap, no reset
        assert alice.gaps == []
        # a retry of a message the old worker answered
        await alice.send({"type": "chat.message", "id": first_id, "text": "before the restart"})

        def answers() -> list[object]:
            return [
                m
                for m in alice.messages
                if getattr(m, "reply_to", None) == first_id and m.type in ("ack", "error")
            ]

        await alice.wait_for(lambda _: len(answers()) == 2, BOUND)
        retry = answers()[-1]
        assert isinstance(retry, Ack) and retry.status == "duplicate"
        assert (await alice.chat("after")).reply == "You said: after"
    finally:
        second.stop()


async def test_two_workers_on_redis_one_killed(
    own_lk: DevServer, llm_url: str, redis_url: str, clients: list[BotClient]
) -> None:
    """Scale-out: two workers share Redis; the one serving the room dies; the other
    takes the room over (its dispatch watchdog) and the user goes on."""
    a = _worker(own_lk, llm_url, redis_url)
    b: Proc | None = None
    try:
        alice = await _join(own_lk, f"pair-{uuid.uuid4().hex[:6]}", "alice", clients)
        old = await alice.wait_bot(timeout=BOUND)
        await alice.chat("one")
        b = _worker(own_lk, llm_url, redis_url)  # registered after the room got A's bot
        _kill(a, signal.SIGKILL)
        await alice.wait_bot(exclude=old, timeout=BOUND)
        assert (await alice.chat("two")).reply == "You said: two"
        page = await alice.request("history.get")
        assert isinstance(page, HistoryPage)
        assert [i.text for i in page.items] == ["one", "You said: one", "two", "You said: two"]
        seqs = [m.seq for m in alice.messages]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        a.stop()
        if b is not None:
            b.stop()


async def test_a_kill_while_the_store_is_slow_leaves_the_client_nothing_unstored(
    own_lk: DevServer, redis_url: str, clients: list[BotClient]
) -> None:
    """What a client holds, the store holds. Redis holds the worker's writes back
    (CLIENT PAUSE WRITE) while it answers a message; it is killed (kill -9) before any
    write lands. The bot must not have published what it had not stored: otherwise the
    client holds seqs that the next worker hands out again (CI saw that without a pause:
    seqs 13 and 14 twice). The message, never answered, is sent again and is served."""
    asked = asyncio.Event()

    class Watched(ScriptedLLMServer):
        async def _completions(self, request: web.Request) -> web.StreamResponse:
            asked.set()
            return await super()._completions(request)

    llm = Watched()
    await llm.start()
    redis = Redis.from_url(redis_url)
    first = _worker(own_lk, llm.base_url, redis_url, store_publish_wait="600")
    try:
        alice = await _join(own_lk, f"slow-{uuid.uuid4().hex[:6]}", "alice", clients)
        old = await alice.wait_bot(timeout=BOUND)
        await alice.chat("before")
        asked.clear()
        await redis.execute_command("CLIENT", "PAUSE", "600000", "WRITE")
        try:
            held = await alice.send({"type": "chat.message", "text": "held back"})
            await asyncio.wait_for(asked.wait(), BOUND)  # the bot took it and ran the turn
            _kill(first, signal.SIGKILL)
        finally:
            await redis.execute_command("CLIENT", "UNPAUSE")
    finally:
        first.stop()
        await redis.aclose()
    second = _worker(own_lk, llm.base_url, redis_url)
    try:
        await alice.wait_bot(exclude=old, timeout=BOUND)
        await alice.send({"type": "chat.message", "id": held, "text": "held back"})  # a retry

        def replies() -> list[object]:
            return [m for m in alice.messages if getattr(m, "reply_to", None) == held]

        await alice.wait_for(lambda _: any(isinstance(m, TurnEnd) for m in replies()), BOUND)
        first_reply = replies()[0]  # the first worker's ack never reached the client
        assert isinstance(first_reply, Ack) and first_reply.status == "accepted"
        assert (await alice.chat("after")).reply == "You said: after"
        page = await alice.request("history.get")
        assert isinstance(page, HistoryPage)
        assert [i.text for i in page.items] == [
            "before",
            "You said: before",
            "held back",
            "You said: held back",
            "after",
            "You said: after",
        ]
        seqs = [m.seq for m in alice.messages]
        assert seqs == list(range(1, len(seqs) + 1))  # one conversation, no seq twice
        assert alice.gaps == []
    finally:
        second.stop()
        await llm.stop()
