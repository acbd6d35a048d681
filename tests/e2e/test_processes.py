"""`bot start` with BOT_PROCESSES=2: two worker processes behind one HTTP port. A room
served by a process that is killed gets a bot from the other, the killed one is
restarted, and `/metrics` shows both processes' numbers. On a livekit-server of its own."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid

import aiohttp
import pytest

from bot.client.bot_client import BotClient
from bot.dev.livekit_server import DevServer
from bot.protocol.attributes import WORKER_ATTRIBUTE

from .procs import start_worker
from .test_dispatch import BOUND, _join
from .test_metrics import scrape


async def _get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def _restarted(port: int, index: int, old_pid: int) -> dict[str, object]:
    """Wait (bounded) until process `index` runs again under a new pid, registered."""
    deadline = time.monotonic() + BOUND
    while True:
        status, text = await _get(port, "/worker")
        p = {p["process"]: p for p in json.loads(text)}[index]
        if status == 200 and p["running"] and p["pid"] != old_pid and "rooms" in p:
            return p
        assert time.monotonic() < deadline, p
        await asyncio.sleep(0.2)


@pytest.mark.timeout(600)
async def test_two_processes_one_killed(
    own_lk: DevServer, llm_url: str, clients: list[BotClient]
) -> None:
    worker = start_worker(own_lk, llm_url, processes="2", watchdog_interval="1")
    try:
        found = re.search(r"HTTP on port (\d+)", worker.text())
        assert found and "2 worker processes" in worker.text()
        port = int(found.group(1))
        status, text = await _get(port, "/worker")
        procs = json.loads(text)
        assert status == 200 and [p["process"] for p in procs] == [0, 1]
        assert all(p["running"] and p["pid"] != worker.process.pid for p in procs)
        assert (await _get(port, "/ready"))[0] == 200  # every process registered

        rooms = [f"multi-{uuid.uuid4().hex[:6]}-{i}" for i in range(4)]
        users = [await _join(own_lk, room, f"u{i}", clients) for i, room in enumerate(rooms)]
        bots = [await u.wait_bot(timeout=BOUND) for u in users]
        for i, u in enumerate(users):
            assert (await u.chat(f"hi {i}")).reply == f"You said: hi {i}"

        metrics = await scrape(port)
        assert metrics["lkbot_worker_processes"] == 2
        per_process = [metrics.get(f'lkbot_rooms{{process="{i}"}}', -1) for i in (0, 1)]
        assert min(per_process) >= 0 and sum(per_process) == 4, per_process
        turns = sum(v for k, v in metrics.items() if k.startswith("lkbot_turns_total{"))
        assert turns == 4

        # kill -9 a process that serves rooms: they get bots again, the others keep theirs
        procs = json.loads((await _get(port, "/worker"))[1])
        victim = next(p for p in procs if p["rooms"] > 0)
        served = [
            u.room.remote_participants[bot].attributes.get(WORKER_ATTRIBUTE) == victim["worker_id"]
            for u, bot in zip(users, bots, strict=True)
        ]
        assert sum(served) == victim["rooms"]
        os.kill(victim["pid"], signal.SIGKILL)
        for u, bot, orphaned in zip(users, bots, served, strict=True):
            if orphaned:
                await u.wait_bot(exclude=bot, timeout=BOUND)
            assert (await u.chat("still here")).reply == "You said: still here"

        killed = await _restarted(port, victim["process"], victim["pid"])
        assert killed["restarts"] == 1
        metrics = await scrape(port)
        assert metrics["lkbot_worker_process_restarts_total"] == 1
    finally:
        code = worker.stop(timeout=60)
    assert code == 0
    assert not re.search(r"Traceback", worker.text()), worker.text()[-3000:]


async def _exited(pid: int) -> None:
    """Wait until `pid` (not our child) has exited: its pidfd turns readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, done.set)
    try:
        await done.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


@pytest.mark.timeout(300)
async def test_worker_processes_leave_when_their_supervisor_is_killed(
    own_lk: DevServer, llm_url: str
) -> None:
    """kill -9 of `bot start`'s own process: its worker processes stop too (they were
    measured still serving 3 s later, registered next to the replacement's)."""
    worker = start_worker(own_lk, llm_url, processes="2")
    try:
        found = re.search(r"HTTP on port (\d+)", worker.text())
        assert found
        procs = json.loads((await _get(int(found.group(1)), "/worker"))[1])
        pids = [p["pid"] for p in procs]
        assert len(pids) == 2 and all(p["running"] for p in procs)
        os.kill(worker.process.pid, signal.SIGKILL)  # the supervisor alone
        await asyncio.wait_for(asyncio.gather(*(_exited(pid) for pid in pids)), BOUND)
    finally:
        worker.stop()
    assert "the supervising process is gone: stopping" in worker.text()
