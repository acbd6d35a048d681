"""Every room gets its bot: rooms LiveKit's dispatch missed, rooms whose worker was
killed or stopped, and bursts of new rooms. On a livekit-server of their own, so that
no other test's worker serves these rooms."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from livekit import api

from bot.client.bot_client import BotClient
from bot.dev import livekit_server
from bot.dev.livekit_server import DevServer
from bot.dev.processes import free_port
from bot.room.tokens import mint_token

from ..harness import script
from .conftest import settings_for
from .procs import Proc, start_worker

# what the tests give the bot to come (generous: the box may be loaded); the
# watchdog's own timing (BOT_WATCHDOG_INTERVAL) is what is under test
BOUND = 90.0


async def _join(lk: DevServer, room: str, identity: str, made: list[BotClient]) -> BotClient:
    client = BotClient()
    made.append(client)
    await client.join(lk.url, mint_token(settings_for(lk), room=room, identity=identity))
    return client


def _kill(proc: Proc, how: signal.Signals) -> None:
    if how == signal.SIGKILL:  # the whole process group: the worker and its job processes
        os.killpg(proc.process.pid, signal.SIGKILL)
        proc.process.wait(30)
    else:
        proc.stop(timeout=60)


async def test_a_room_made_before_any_worker_gets_a_bot(
    own_lk: DevServer, llm_url: str, clients: list[BotClient]
) -> None:
    """LiveKit dispatches at room creation only: this room's dispatch found no worker."""
    room = f"early-{uuid.uuid4().hex[:6]}"
    alice = await _join(own_lk, room, "alice", clients)
    worker = start_worker(own_lk, llm_url, watchdog_interval="1")
    try:
        started = time.monotonic()
        await alice.wait_bot(timeout=BOUND)
        print(f"\nbot arrived {time.monotonic() - started:.1f}s after the worker registered")
        result = await alice.chat("hello late bot")
        assert result.reply == "You said: hello late bot"
        assert "dispatch watchdog: a room has people but no bot" in worker.text()
    finally:
        worker.stop()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
async def test_a_room_whose_worker_died_gets_a_new_bot(
    own_lk: DevServer,
    llm_url: str,
    clients: list[BotClient],
    how: signal.Signals,
    tmp_path: Path,
) -> None:
    room = f"orphan-{uuid.uuid4().hex[:6]}"
    # one fleet: the workers know each other's liveness from the store they share
    fleet = {"watchdog_interval": "1", "store": f"sqlite://{tmp_path / 'fleet.db'}"}
    first = start_worker(own_lk, llm_url, **fleet)
    try:
        alice = await _join(own_lk, room, "alice", clients)
        old = await alice.wait_bot(timeout=BOUND)
        answer = await alice.request("chat.message", text=script(say="never", delay=30))
        turn = answer.turn  # type: ignore[union-attr]
        await alice.wait_for(lambda _: any(e.type == "turn.start" for e in alice.turn_events(turn)))
        _kill(first, how)  # mid-turn
    finally:
        first.stop()
    second = start_worker(own_lk, llm_url, **fleet)
    try:
        started = time.monotonic()
        new = await alice.wait_bot(exclude=old, timeout=BOUND)
        print(f"\nnew bot {time.monotonic() - started:.1f}s after the new worker registered")
        assert new != old and old not in alice.room.remote_participants
        assert (await alice.chat("still there?")).reply == "You said: still there?"
        if how == signal.SIGTERM:  # a clean stop still ended the running turn
            ends = [e for e in alice.turn_events(turn) if e.type == "turn.end"]
            assert len(ends) == 1 and ends[0].reason == "shutdown"  # type: ignore[union-attr]
    finally:
        second.stop()


async def test_a_burst_of_rooms_each_gets_a_bot(
    own_lk: DevServer, llm_url: str, clients: list[BotClient]
) -> None:
    """Rooms created at once, while the worker runs: every one is served (no load
    refusal, no lost job). The 50-room burst is measured by `make bench`."""
    worker = start_worker(own_lk, llm_url)
    try:
        tag = uuid.uuid4().hex[:6]
        joined = await asyncio.gather(
            *(_join(own_lk, f"burst-{tag}-{i}", f"u{i}", clients) for i in range(10))
        )
        await asyncio.gather(*(c.wait_bot(timeout=BOUND) for c in joined))
        replies = await asyncio.gather(*(c.chat(f"hi {i}") for i, c in enumerate(joined)))
        assert [r.reply for r in replies] == [f"You said: hi {i}" for i in range(10)]
    finally:
        worker.stop()


async def test_a_livekit_server_restart_mid_turn_ends_the_turn(
    llm_url: str, clients: list[BotClient]
) -> None:
    """kill -9 of livekit-server while a turn runs, back on the same ports: the client's
    turn still ends (its events are re-sent once the bot has reconnected)."""
    lk = livekit_server.start()
    worker = start_worker(lk, llm_url, watchdog_interval="1")
    try:
        alice = await _join(lk, f"restart-{uuid.uuid4().hex[:6]}", "alice", clients)
        await alice.wait_bot(timeout=BOUND)
        answer = await alice.request("chat.message", text=script(say="made it", delay=4))
        turn = answer.turn  # type: ignore[union-attr]
        await alice.wait_for(lambda _: any(e.type == "turn.start" for e in alice.turn_events(turn)))
        lk.kill()
        await asyncio.sleep(2)  # the outage itself (not a wait for an outcome)
        lk.restart()
        await alice.wait_for(
            lambda _: any(e.type == "turn.end" for e in alice.turn_events(turn)), BOUND
        )
        # Packets the bot published while away are lost; later ones may arrive before
        # the client's resume is answered: wait (bounded) for the replay to fill in.
        await alice.wait_for(lambda _: _unbroken([m.seq for m in alice.messages]), BOUND)
        events = alice.turn_events(turn)
        assert [e.type for e in events].count("turn.end") == 1
        assert any(e.type == "turn.reply" and e.text == "made it" for e in events)  # type: ignore[union-attr]
        seqs = [m.seq for m in alice.messages]
        assert sorted(seqs) == list(range(1, len(seqs) + 1))  # each once, none missing
        # one bot is left in the room, and it is the one that kept the conversation
        await alice.wait_for(lambda _: alice._agent(exclude=alice.agent) is None, BOUND)
        assert (await alice.chat("and now?")).reply == "You said: and now?"
    finally:
        worker.stop()
        lk.stop()


def _unbroken(seqs: list[int]) -> bool:
    return sorted(seqs) == list(range(1, len(seqs) + 1))


async def test_a_webhook_brings_a_bot_back_at_once(llm_url: str, clients: list[BotClient]) -> None:
    """livekit-server posts its webhooks to the worker (`POST /webhook`, signed with the
    API key). The slow reconciliation scan is set to an hour here: only the webhook of
    the bot leaving (an operator removed it) can bring another."""
    port = free_port()
    lk = livekit_server.start(webhook=f"http://127.0.0.1:{port}/webhook")
    worker = start_worker(
        lk,
        llm_url,
        watchdog_interval="1",
        watchdog_scan_interval="3600",
        http_port=str(port),
        log_level="DEBUG",
    )
    try:
        alice = await _join(lk, f"hook-{uuid.uuid4().hex[:6]}", "alice", clients)
        old = await alice.wait_bot(timeout=BOUND)
        async with api.LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as lkapi:
            await lkapi.room.remove_participant(
                api.RoomParticipantIdentity(room=alice.room.name, identity=old)
            )
        await alice.wait_bot(exclude=old, timeout=BOUND)
        assert (await alice.chat("back?")).reply == "You said: back?"
        assert "a room has people but no bot; dispatching one" in worker.text()
    finally:
        worker.stop()
        lk.stop()
