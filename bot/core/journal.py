"""The store's side of one conversation: the hot path records, one task writes.

Recording never waits on a disk or a network hop. Every change (a message sent, a
history item, a remembered id, a turn's lease) is added to a pending batch at once,
and a single task applies batches to the store one after another: whatever piles up
while one batch is written goes out as the next, so a busy conversation makes few,
larger writes and an idle one writes at once. `flush()` waits for all of it.

What a client holds, the store holds: the outbox publishes a message only once the
batch holding it is written (`stored`/`wait_stored`), so a worker killed mid-turn never
leaves a client with a `seq` the next worker would hand out again. A store that fails
or is slower than `publish_wait_s` is not waited for (serving beats waiting; logged).

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
PUBLISH_WAIT_S = 5.0  # a store slower than this does not hold messages back


class Journal:
    def __init__(
        self,
        store: Store,
        key: ConversationKey,
        *,
        lease_ttl_s: float = 10.0,
        publish_wait_s: float = PUBLISH_WAIT_S,
    ) -> None:
        self.store = store
        self.key = key
        self.lease_ttl_s = lease_ttl_s
        self.publish_wait_s = publish_wait_s
        self._recorded = 0  # the highest seq recorded
        self._settled = 0  # every seq recorded up to here is written, or its write failed
        self._unwaited = False  # the store failed or hung: publish without waiting for it
        self._progress = asyncio.Event()  # set (and replaced) when either changes
        self._pending = Changes()
        self._writer: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._held: dict[str, Lease] = {}
        self.writes = 0  # batches applied (for tests and the benchmark)
        self.failed = 0

    # -- recording (sync, cheap) --

    def sent(self, record: SentRecord) -> None:
        self._pending.sent.append(record)
        self._pending.seq = self._recorded = record.seq
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

    # -- what may be published --

    def stored(self, seq: int) -> bool:
        """Whether message `seq` may go out: its record is written, or it was never
        recorded here (a replay of what an earlier worker stored), or the store is
        failing (until its next write succeeds)."""
        return self._unwaited or seq <= self._settled or seq > self._recorded

    async def wait_stored(self, seq: int) -> None:
        """Wait until `stored(seq)`, at most `publish_wait_s`."""
        try:
            async with asyncio.timeout(self.publish_wait_s):
                while not self.stored(seq):
                    await self._progress.wait()
        except TimeoutError:
            log.warning("the store took over %gs: sending without it", self.publish_wait_s)
            self._moved(unwaited=True)

    def _moved(self, *, settled: int | None = None, unwaited: bool = False) -> None:
        self._settled = max(self._settled, settled or 0)
        self._unwaited = unwaited
        self._progress.set()
        self._progress = asyncio.Event()

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
                        self._moved(settled=batch.seq)
                        break
                    except Exception as e:
                        self._moved(unwaited=True)  # messages go out while it is retried
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
