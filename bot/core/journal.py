"""Write-behind for one conversation: the hot path records, one task writes.

Sending a delta must not wait on a disk or a network hop. Every change (a message sent,
a history item, a remembered id, a turn's lease) is added to a pending batch at once,
and a single task applies batches to the store one after another: whatever piles up
while one batch is written goes out as the next, so a busy conversation makes few,
larger writes and an idle one writes at once. `flush()` waits for all of it.

A turn's lease is renewed while the turn runs; if its worker dies, the lease expires
and whoever serves the conversation next ends that turn (`Conversation.restore`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from typing import Any

from ..store import Changes, ConversationKey, Lease, SeenId, SentRecord, Store
from ..store.model import now_ms
from . import metrics
from .tasks import supervise

log = logging.getLogger(__name__)

# who holds a lease: this process (a dead process never renews)
OWNER = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
RETRY_S = (0.1, 0.5, 2.0, 5.0)


class Journal:
    def __init__(self, store: Store, key: ConversationKey, *, lease_ttl_s: float = 10.0) -> None:
        self.store = store
        self.key = key
        self.lease_ttl_s = lease_ttl_s
        self._pending = Changes()
        self._writer: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._held: dict[str, Lease] = {}
        self.writes = 0  # batches applied (for tests and the benchmark)
        self.failed = 0

    # -- recording (sync, cheap) --

    def sent(self, record: SentRecord) -> None:
        self._pending.sent.append(record)
        self._pending.seq = record.seq
        self._kick()

    def history_add(self, item: dict[str, Any]) -> None:
        self._pending.history.append(item)
        self._kick()

    def history_clear(self) -> None:
        self._pending.history_cleared = True
        self._pending.history.clear()
        self._kick()

    def remember(self, seen: SeenId) -> None:
        self._pending.ids.append(seen)
        self._kick()

    def lease_begin(self, turn: str, request_id: str, topic: str) -> None:
        lease = Lease(turn, request_id, topic, OWNER, now_ms() + int(self.lease_ttl_s * 1000))
        self._held[turn] = lease
        self._pending.leases[turn] = lease
        self._pending.ended.discard(turn)
        self._kick()
        if self._renewer is None:
            self._renewer = supervise(self._renew(), name="lease-renewer")

    def lease_end(self, turn: str) -> None:
        self._held.pop(turn, None)
        self._pending.leases.pop(turn, None)
        self._pending.ended.add(turn)
        self._kick()

    # -- writing --

    def _kick(self) -> None:
        if self._writer is None:
            self._writer = supervise(self._write(), name="journal", on_crash=self._crashed)

    def _crashed(self, _: BaseException) -> None:
        self._writer = None

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, Changes()
                for attempt, wait in enumerate((*RETRY_S, None)):
                    try:
                        started = time.perf_counter()
                        await self.store.apply(self.key, batch)
                        metrics.STORE_WRITE.observe(time.perf_counter() - started)
                        self.writes += 1
                        break
                    except Exception as e:
                        if wait is None:
                            self.failed += 1
                            metrics.STORE_FAILURES.inc()
                            log.error(
                                "store write failed %d times, batch dropped: %s", attempt + 1, e
                            )
                            break
                        log.warning("store write failed (%s); retrying in %gs", e, wait)
                        await asyncio.sleep(wait)
        finally:
            self._writer = None

    async def _renew(self) -> None:
        try:
            while self._held:
                await asyncio.sleep(self.lease_ttl_s / 3)
                until = now_ms() + int(self.lease_ttl_s * 1000)
                for turn, lease in list(self._held.items()):
                    renewed = Lease(lease.turn, lease.request_id, lease.topic, OWNER, until)
                    self._held[turn] = self._pending.leases[turn] = renewed
                if self._held:
                    self._kick()
        finally:
            self._renewer = None

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait (bounded) until everything recorded is in the store."""
        try:
            async with asyncio.timeout(timeout):
                while self._writer is not None:
                    await asyncio.shield(self._writer)
        except TimeoutError:
            log.warning("store flush timed out")
            return False
        return True

    async def aclose(self, timeout: float = 5.0) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        await self.flush(timeout)
