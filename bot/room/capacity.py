"""How many rooms a worker takes, what it tells LiveKit, and what keeps rooms served.

livekit-server sends a room only to a worker whose last reported load is below
`agents.target_load` (0.7 by default) and never retries a refused job. livekit-agents
reports the box's CPU by default, so a busy 2-core box silently lost rooms. Here the
load is the worker's own capacity: `rooms / BOT_MAX_ROOMS` (rooms running, or accepted
and not yet assigned), scaled by
`BOT_LIVEKIT_TARGET_LOAD` so that the server keeps sending rooms until exactly
`BOT_MAX_ROOMS` are served. Rooms missed anyway (a late availability answer, a worker
that died) are picked up by the dispatch watchdog (`watchdog.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from livekit import api

from ..config import Settings
from ..core.tasks import supervise
from .liveness import Heartbeat, WorkerRegistry
from .watchdog import DispatchWatchdog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoomLoad:
    """The load this worker reports to livekit-server for a number of rooms taken."""

    max_rooms: int
    target_load: float

    def of(self, rooms: int) -> float:
        return min(1.0, rooms / self.max_rooms) * self.target_load


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
