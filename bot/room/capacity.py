"""How many rooms a worker takes, what it tells LiveKit, and what keeps rooms served.

livekit-server sends a room only to a worker whose last reported load is below
`agents.target_load` (0.7 by default) and never retries a refused job. livekit-agents
reports the box's CPU by default, so a busy 2-core box silently lost rooms. Here the
load is the worker's own capacity: `rooms / BOT_MAX_ROOMS`, scaled by
`BOT_LIVEKIT_TARGET_LOAD` so that the server keeps sending rooms until exactly
`BOT_MAX_ROOMS` are served. Rooms missed anyway (a late availability answer, a worker
that died) are picked up by the dispatch watchdog (`watchdog.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from livekit import api
from livekit.agents import AgentServer, JobRequest
from livekit.agents.job import RunningJobInfo

from ..config import Settings
from ..core.tasks import supervise
from .liveness import Heartbeat, WorkerRegistry
from .watchdog import DispatchWatchdog

log = logging.getLogger(__name__)

ACCEPTED_FOR_S = 60.0


@dataclass(frozen=True)
class RoomLoad:
    """The load livekit-agents reports for this worker (called with the server)."""

    max_rooms: int
    target_load: float

    def __call__(self, server: AgentServer) -> float:
        return self.of(len(server.active_jobs))

    def of(self, rooms: int) -> float:
        return min(1.0, rooms / self.max_rooms) * self.target_load


@dataclass
class AcceptWhileRoom:
    """The job request callback: take a room while under BOT_MAX_ROOMS. Remembers the
    rooms it accepted until their job runs (`handling`), for the dispatch watchdog."""

    max_rooms: int
    server: AgentServer | None = None  # set by build_server once the server exists
    accepted: dict[str, float] = field(default_factory=dict)  # room -> when

    def _running(self) -> list[RunningJobInfo]:
        return self.server.active_jobs if self.server is not None else []

    async def __call__(self, request: JobRequest) -> None:
        if len(self._running()) < self.max_rooms:
            self.accepted[request.room.name] = time.monotonic()
            await request.accept()
        else:
            log.warning("at capacity (%d rooms, BOT_MAX_ROOMS): refusing a room", self.max_rooms)
            await request.reject()

    def handling(self) -> set[str]:
        """Rooms this worker runs, or accepted within the last minute (assignment and
        a job's start can take that long on a busy box)."""
        now = time.monotonic()
        for room in [r for r, t in self.accepted.items() if now - t > ACCEPTED_FOR_S]:
            del self.accepted[room]
        running = {j.job.room.name for j in self._running()}
        return running | set(self.accepted)


@dataclass
class RoomKeeper:
    """The worker's heartbeat and its dispatch watchdog, started once registered."""

    settings: Settings
    handling: Callable[[], set[str]] = set
    registry: WorkerRegistry = field(default_factory=WorkerRegistry)
    _heartbeats: list[Heartbeat] = field(default_factory=list)
    _watchdog: asyncio.Task[None] | None = None
    _api: api.LiveKitAPI | None = None

    def registered(self, worker_id: str) -> None:
        """On every registration (a reconnect may bring a new id): beat each id we had."""
        if self.settings.watchdog_interval <= 0:
            return
        beat = Heartbeat(self.registry, worker_id, interval=min(self.settings.watchdog_interval, 2))
        beat.start()
        self._heartbeats.append(beat)
        if self._watchdog is None:
            s = self.settings
            self._api = api.LiveKitAPI(s.livekit_url, s.livekit_api_key, s.livekit_api_secret)
            watchdog = DispatchWatchdog(
                self._api,
                agent_name=s.agent_name,
                liveness=self.registry.state,
                interval_s=s.watchdog_interval,
                grace_s=s.watchdog_grace,
                handling=self.handling,
            )
            self._watchdog = supervise(watchdog.run(), name="dispatch-watchdog")
            log.info("dispatch watchdog: scanning rooms every %gs", s.watchdog_interval)

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._api is not None:
            await self._api.aclose()
        for beat in self._heartbeats:
            beat.stop()
