"""Rooms created by the server API at once: how soon is each room's bot in?

An app's backend creates a room (`CreateRoom`) before it hands out tokens, and LiveKit
dispatches the bot at creation. Here N rooms are created at the same moment and nobody
else joins: the bot's join alone, the same work as the floor's bare connects (one
participant per room), on a box that runs nothing else. Time = the room's `CreateRoom`
call → its bot's participant is active, as livekit-server reports it in its
`participant_joined` webhook (sent when a participant's connection is up), taken when
the webhook arrives here. Run and published by `bench.burst`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass

from aiohttp import web
from livekit import api

from bot.dev import livekit_server
from bot.worker.health import serve_http

from .floor import Floors
from .report import fmt, md_table
from .stack import cpu_seconds, drain, nearest_rank

BOUND_S = 120.0  # a bot later than this counts as never


class Webhooks:
    """Receives livekit-server's webhooks; keeps when each room's first participant
    became active."""

    def __init__(self) -> None:
        self.joined: dict[str, float] = {}  # room -> time.monotonic() of arrival
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        self._runner, port = await serve_http({"/": self._post}, "127.0.0.1", 0, method="POST")
        return f"http://127.0.0.1:{port}/"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        event = json.loads(await request.read())  # application/webhook+json
        if event.get("event") == "participant_joined":
            self.joined.setdefault(event["room"]["name"], time.monotonic())
            self._changed.set()
        return web.Response()

    async def wait(self, rooms: list[str], timeout: float) -> None:
        """Until every room has had a participant join, or the time is up."""
        deadline = time.monotonic() + timeout
        while not all(r in self.joined for r in rooms):
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return


@dataclass
class Created:
    rooms: int
    joined: int
    p50_s: float | None
    p99_s: float | None
    max_s: float | None
    cpu_worker_s: float
    cpu_server_s: float


async def created_burst(
    lk: livekit_server.DevServer, hooks: Webhooks, n: int, worker: int
) -> Created:
    tag = uuid.uuid4().hex[:6]
    rooms = [f"created-{tag}-{i}" for i in range(n)]
    started: dict[str, float] = {}
    pids = (worker, lk.process.pid)
    http = lk.url.replace("ws://", "http://")
    async with api.LiveKitAPI(http, lk.api_key, lk.api_secret) as lkapi:

        async def create(room: str) -> None:
            started[room] = time.monotonic()
            await lkapi.room.create_room(api.CreateRoomRequest(name=room))

        cpu0 = [cpu_seconds(p) for p in pids]
        await asyncio.gather(*(create(r) for r in rooms))
        await hooks.wait(rooms, BOUND_S)
        cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
        await asyncio.gather(
            *(lkapi.room.delete_room(api.DeleteRoomRequest(room=r)) for r in rooms),
            return_exceptions=True,
        )
    await drain(lk)
    times = [hooks.joined[r] - started[r] for r in rooms if r in hooks.joined]
    return Created(
        rooms=n,
        joined=len(times),
        p50_s=statistics.median(times) if times else None,
        p99_s=nearest_rank(times, 0.99),
        max_s=max(times) if times else None,
        cpu_worker_s=cpu[0],
        cpu_server_s=cpu[1],
    )


def created_table(results: list[Created], floors: Floors) -> str:
    header = [
        "rooms created at once",
        "bot in",
        "p50 (s)",
        "p99 (s)",
        "max (s)",
        "floor p50 / p99 (s): SDK defaults · native logs in Rust",
        "p99 ÷ floor p99",
        "CPU s: worker / livekit-server",
    ]
    rows = []
    for c in results:
        cells, ratios = [], []
        for quiet in (False, True):
            f = floors.get((c.rooms, quiet))
            cells.append(f"{f.p50_s:.2f} / {f.p99_s:.2f}" if f else "–")
            if f and c.p99_s is not None and f.p99_s:
                ratios.append(f"{c.p99_s / f.p99_s:.1f}×")
        rows.append(
            [
                str(c.rooms),
                f"{c.joined}/{c.rooms}",
                fmt(c.p50_s, 2),
                fmt(c.p99_s, 2),
                fmt(c.max_s, 2),
                " · ".join(cells),
                " · ".join(ratios) or "–",
                f"{c.cpu_worker_s:.1f} / {c.cpu_server_s:.1f}",
            ]
        )
    return md_table(header, rows)
