"""The worker's part in the fleet: its leases in the store, and the dispatch watchdog
it runs while it holds the fleet's watchdog lease."""

from __future__ import annotations

import logging
from collections.abc import Callable

from livekit import api

from ..config import Settings
from ..core.journal import OWNER
from ..store.base import Fleet
from .leases import Liveness, WorkerLeases
from .watchdog import DispatchWatchdog

log = logging.getLogger(__name__)


class FleetKeeper:
    def __init__(
        self, settings: Settings, store: Fleet, *, handling: Callable[[], set[str]] = set
    ) -> None:
        s = settings
        # the server API: the watchdog's, and a draining worker's (it asks for successors)
        self.api = api.LiveKitAPI(s.livekit_url, s.livekit_api_key, s.livekit_api_secret)
        scan = None
        if s.watchdog_interval > 0:
            self.watchdog: DispatchWatchdog | None = DispatchWatchdog(
                self.api,
                agent_name=s.agent_name,
                liveness=self.state,
                grace_s=s.watchdog_grace,
                handling=handling,
            )
            scan = self.watchdog.scan_logged
        else:
            self.watchdog = None
        self.leases = WorkerLeases(
            store,
            ttl_s=s.worker_lease_ttl,
            role=f"watchdog:{s.agent_name}",
            owner=OWNER,
            on_lead=scan,
            lead_every_s=s.watchdog_interval,
        )

    def state(self, worker: str) -> Liveness:
        return self.leases.state(worker)

    def others_alive(self) -> bool:
        """Whether a worker other than this process's holds a live lease."""
        return self.leases.others_alive()

    def registered(self, worker_id: str) -> None:
        """On every registration (a reconnect brings a new id): lease each id we had."""
        self.leases.add(worker_id)

    async def aclose(self) -> None:
        await self.leases.aclose()
        await self.api.aclose()
