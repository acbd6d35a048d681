"""The worker's part in the fleet: its leases in the store, and the dispatch watchdog
it runs while it holds the fleet's watchdog lease."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from livekit import api
from livekit.protocol.models import ParticipantInfo
from livekit.protocol.webhook import WebhookEvent

from ..config import Settings
from ..protocol.attributes import is_bot
from ..state.journal import OWNER
from ..store.base import Fleet
from ..tasks import supervise
from .leases import Liveness, WorkerLeases
from .watchdog import DispatchWatchdog

log = logging.getLogger(__name__)

LEFT_CHECK_S = 2.0


class FleetKeeper:
    def __init__(
        self, settings: Settings, store: Fleet, *, handling: Callable[[], set[str]] = set
    ) -> None:
        s = settings
        self._grace = s.watchdog_grace
        self._agent_name = s.agent_name
        # the server API: the watchdog's, and a draining worker's (it asks for successors)
        self.api = api.LiveKitAPI(s.livekit_url, s.livekit_api_key, s.livekit_api_secret)
        tick = None
        self._woken: asyncio.Task[None] | None = None
        if s.watchdog_interval > 0:
            self.watchdog: DispatchWatchdog | None = DispatchWatchdog(
                self.api,
                agent_name=s.agent_name,
                liveness=self.state,
                grace_s=s.watchdog_grace,
                handling=handling,
                fleet=store,
                workers=lambda: self.leases.known(),
                scan_every_s=s.watchdog_scan_interval,
            )
            tick = self.watchdog.tick
        else:
            self.watchdog = None
        self.leases = WorkerLeases(
            store,
            ttl_s=s.worker_lease_ttl,
            role=f"watchdog:{s.agent_name}",
            owner=OWNER,
            on_lead=tick,
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
        if self.watchdog is not None and self._woken is None:
            self._woken = supervise(self.watchdog.run_woken(), name="watchdog-webhooks")

    def webhook(self, event: WebhookEvent) -> None:
        """A LiveKit webhook: look at the rooms it may leave without a bot (a room that
        started or a person who joined: after the grace a dispatch has to bring its
        bot; a bot of ours that left: at once)."""
        p = event.participant
        log.debug(
            "webhook %s (%s)", event.event, sorted(p.attributes) if p.kind == p.Kind.AGENT else "-"
        )
        if self.watchdog is None or not event.room.name:
            return
        person = p.kind != ParticipantInfo.Kind.AGENT
        if event.event == "room_started" or (event.event == "participant_joined" and person):
            self.watchdog.wake(event.room.name, self._grace)
        elif event.event == "participant_left" and is_bot(p.attributes, self._agent_name):
            # soon, not at once: a bot of this worker that left is still being closed
            # (its room counts as handled here until then)
            self.watchdog.wake(event.room.name, LEFT_CHECK_S)

    async def aclose(self) -> None:
        if self._woken is not None:
            self._woken.cancel()
            await asyncio.gather(self._woken, return_exceptions=True)
        await self.leases.aclose()
        await self.api.aclose()
