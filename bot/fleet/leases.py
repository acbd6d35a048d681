"""Which workers are alive, from their leases in the store; one watchdog per fleet.

Each worker process renews a lease for every worker id it registered with (a
reconnect brings a new id; its older rooms still carry the old one) every
`BOT_WORKER_LEASE_TTL / 4` seconds. The same call returns every worker's lease, as
time left by the store's own clock (no clock skew between machines matters), kept
as a snapshot that `state()` answers from without a round trip. A worker is *dead*
when its lease ran out (killed, stopped, or cut off from the store) or it retired
(stopped cleanly); *unknown* when the store never heard of it (a worker of another
store: presumed alive, never removed); *alive* otherwise.

The same loop takes the fleet's watchdog lease: only its holder scans LiveKit for
rooms without a bot (`watchdog.py`), so the fleet makes one scan per interval, not one
per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from ..store.base import Fleet
from ..tasks import supervise

log = logging.getLogger(__name__)

Liveness = Literal["alive", "dead", "unknown"]


class WorkerLeases:
    def __init__(
        self,
        store: Fleet,
        *,
        ttl_s: float,
        role: str = "",
        owner: str = "",
        on_lead: Callable[[], Awaitable[None]] | None = None,
        lead_every_s: float = 0.0,
        lead_ttl_s: float | None = None,
    ) -> None:
        """`on_lead` runs every `lead_every_s` while this process holds the `role`
        lease (the dispatch watchdog's scan); none: never lead. The lease lasts
        `lead_ttl_s` (three rounds by default): a leader that stops, another takes over."""
        self._store = store
        self._ttl_ms = int(ttl_s * 1000)
        self._every = ttl_s / 4
        self._role = role
        self._owner = owner
        self._on_lead = on_lead
        self._lead_every = lead_every_s
        self._lead_ttl_ms = int((lead_ttl_s or 3 * lead_every_s) * 1000)
        self._mine: list[str] = []
        self._left: dict[str, int] = {}  # worker -> ms left at `_read_at`
        self._read_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._lead_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.leading = False

    def state(self, worker: str) -> Liveness:
        left = self._left.get(worker)
        elapsed_ms = (time.monotonic() - self._read_at) * 1000
        if left is None or elapsed_ms > self._ttl_ms / 2:
            # never heard of, or the store has not been read for a while (it is away):
            # a snapshot that old would make every other worker look dead
            return "unknown"
        return "alive" if left - elapsed_ms > 0 else "dead"

    def known(self) -> list[str]:
        """Every worker the store has a lease of (dead ones for up to an hour)."""
        return list(self._left)

    def others_alive(self) -> bool:
        return any(self.state(w) == "alive" for w in self._left if w not in self._mine)

    def add(self, worker: str) -> None:
        """Lease `worker` from now on (this process registered as it), renewed at once."""
        if worker not in self._mine:
            self._mine.append(worker)
        self._wake.set()
        self._start()

    def _start(self) -> None:
        if self._task is None:
            self._task = supervise(self._run(), name="worker-leases")
        if self._on_lead is not None and self._lead_task is None:
            self._lead_task = supervise(self._lead(), name="fleet-watchdog")

    async def renew(self) -> None:
        """Renew this process's leases now, and read everyone's."""
        for worker in self._mine:
            left = await self._store.beat(worker, self._ttl_ms)
            self._left, self._read_at = left, time.monotonic()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.renew()
            except Exception as e:  # the store away for a moment must not end it
                log.warning("worker lease not renewed: %s", e)
            with contextlib.suppress(TimeoutError):  # (wait_for can swallow a cancel)
                async with asyncio.timeout(self._every):
                    await self._wake.wait()

    async def _lead(self) -> None:
        assert self._on_lead is not None
        while True:
            try:
                was = self.leading
                self.leading = await self._store.lead(self._role, self._owner, self._lead_ttl_ms)
                if self.leading != was:
                    log.info("dispatch watchdog: %s", "leading" if self.leading else "standing by")
                if self.leading:
                    await self._on_lead()
            except Exception as e:
                log.warning("dispatch watchdog: %s", e)
            await asyncio.sleep(self._lead_every)

    async def aclose(self) -> None:
        """Stop renewing and retire this process's workers: dead at once for the fleet
        (their rooms need a new bot), not after the lease runs out."""
        for task in (self._task, self._lead_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for worker in self._mine:
            with contextlib.suppress(Exception):
                await self._store.beat(worker, -1)
