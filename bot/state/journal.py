"""The store's side of one conversation: the hot path records, one task writes.

Recording never waits on a disk or a network hop. Every change (a message sent, a
history item, a remembered id, a turn's lease) is added to a pending batch at once,
and a single task applies batches to the store one after another: whatever piles up
while one batch is written goes out as the next, so a busy conversation makes few,
larger writes. An idle one writes once the work already scheduled has run (two passes
of the loop: a message's answer, its turn's start and first status are one write).
`flush()` waits for all of it.

What a client holds, the store holds: the outbox publishes a message only once the
batch holding it is written (`stored`/`wait_stored`), so a worker killed mid-turn never
leaves a client with a `seq` the next worker would hand out again. A store that fails
or is slower than `publish_wait_s` is not waited for (serving beats waiting; logged).

One writer per conversation, enforced by the store: `claim()` takes the conversation
with a fencing token that every batch carries. When another bot claims it (a fresh
bot after a node crash, a second bot in the room), this journal's next write is
refused (`Stale`): it writes nothing more, what it had recorded but not written is
never published, and `on_stale` tells the conversation to stop serving. A turn that
is running is recorded (`lease_begin`/`lease_end`); a claim that finds one recorded
knows its writer can no longer write, and ends it (`Conversation.restore`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .. import metrics
from ..store import Changes, ConversationKey, ConversationState, Lease, SeenId, SentRecord, Store
from ..store.model import Stale, forgotten, now_ms
from ..tasks import supervise

log = logging.getLogger(__name__)

# who holds a lease: this process (a dead process never renews)
OWNER = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
RETRY_S = (0.1, 0.5, 2.0, 5.0)
PUBLISH_WAIT_S = 5.0  # a store slower than this does not hold messages back
OPENING_PASSES = 2  # loop passes a first write waits for more to record (see _write)


class Journal:
    def __init__(
        self,
        store: Store,
        key: ConversationKey,
        *,
        publish_wait_s: float = PUBLISH_WAIT_S,
        on_stale: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.key = key
        self.publish_wait_s = publish_wait_s
        self._on_stale = on_stale
        self.fence: int | None = None  # this writer's token; nothing is written before it
        self.stale = False  # another writer claimed the conversation: nothing more is written
        self._recorded = 0  # the highest seq recorded
        self._settled = 0  # every seq recorded up to here is written, or its write failed
        self._unwaited = False  # the store failed or hung: publish without waiting for it
        self._progress = asyncio.Event()  # set (and replaced) when either changes
        self._pending = Changes()
        self._leases: dict[str, Lease] = {}  # the turns running, as last recorded
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0  # batches applied (for tests and the benchmark)
        self.failed = 0

    async def claim(self) -> ConversationState:
        """Take the conversation (every earlier writer's claim goes stale) and return
        what the store holds. Raises what the store raises: a conversation that cannot
        be read is not served (never started over empty)."""
        claim = await self.store.claim(self.key, OWNER)
        self.fence = claim.fence
        self._settled = self._recorded = max(self._recorded, claim.state.seq)
        self._kick()  # anything recorded before the claim
        return claim.state

    # -- recording (sync, cheap) --

    def sent(self, record: SentRecord) -> None:
        if self.stale:
            return
        self._pending.sent.append(record)
        self._pending.seq = self._recorded = record.seq
        self._kick()

    def history_add(self, item: dict[str, Any]) -> None:
        if self.stale:
            return
        self._pending.history.append(item)
        self._kick()

    def history_clear(self) -> None:
        if self.stale:
            return
        self._pending.history_cleared = True
        self._pending.history.clear()
        self._kick()

    def forget(self) -> None:
        """history.reset: the stored resume window is emptied and the remembered ids
        keep no print of their message (those recorded and not yet written too)."""
        if self.stale:
            return
        self._pending.sent.clear()
        self._pending.sent_cleared = True
        self._pending.ids = [forgotten(s) for s in self._pending.ids]
        self._pending.ids_forgotten = True
        self._kick()

    def remember(self, seen: SeenId) -> None:
        if self.stale:
            return
        self._pending.ids.append(seen)
        self._kick()

    def lease_begin(
        self, turn: str, request_id: str, topic: str, *, suspended: dict[str, Any] | None = None
    ) -> None:
        """A turn is running: recorded so that a writer claiming the conversation after
        this one knows to end it for the client (or, `suspended`, to continue it)."""
        self._set_lease(Lease(turn, request_id, topic, OWNER, now_ms(), suspended))

    def lease_suspend(self, turn: str, suspended: dict[str, Any] | None) -> None:
        """The running turn waits for a person (`suspended`: what continues it), or no
        longer does (None)."""
        lease = self._leases.get(turn)
        if lease is not None:
            self._set_lease(replace(lease, until_ms=now_ms(), suspended=suspended))

    def _set_lease(self, lease: Lease) -> None:
        if self.stale:
            return
        self._leases[lease.turn] = self._pending.leases[lease.turn] = lease
        self._pending.ended.discard(lease.turn)
        self._kick()

    def lease_end(self, turn: str) -> None:
        self._leases.pop(turn, None)
        if self.stale:
            return
        self._pending.leases.pop(turn, None)
        self._pending.ended.add(turn)
        self._kick()

    # -- what may be published --

    def stored(self, seq: int) -> bool:
        """Whether message `seq` may go out: its record is written (or it is a replay
        of what the store held at the claim), or the store is failing (until its next
        write succeeds). Never what a stale writer recorded and could not write."""
        if seq <= self._settled:
            return True
        return not self.stale and (self._unwaited or seq > self._recorded)

    async def wait_stored(self, seq: int) -> bool:
        """Wait until `stored(seq)`, at most `publish_wait_s`; False when it never will
        be (another writer claimed the conversation): the message must not go out."""
        try:
            async with asyncio.timeout(self.publish_wait_s):
                while not self.stored(seq):
                    if self.stale:
                        return False
                    await self._progress.wait()
        except TimeoutError:
            log.warning("the store took over %gs: sending without it", self.publish_wait_s)
            self._moved(unwaited=True)
        return True

    def _moved(self, *, settled: int | None = None, unwaited: bool = False) -> None:
        self._settled = max(self._settled, settled or 0)
        self._unwaited = unwaited
        self._progress.set()
        self._progress = asyncio.Event()

    # -- writing --

    def _kick(self) -> None:
        if self._writer is None and self.fence is not None and not self.stale:
            self._writer = supervise(self._write(), name="journal", on_crash=self._crashed)

    def _crashed(self, _: BaseException) -> None:
        self._writer = None

    async def _write(self) -> None:
        try:
            # what the code already scheduled records next goes in the same batch: a
            # message's answer, its turn's start and the turn's first status are recorded
            # over three passes of the loop (dispatcher, turn queue, engine)
            for _ in range(OPENING_PASSES):
                await asyncio.sleep(0)
            while self._pending and not self.stale:
                batch, self._pending = self._pending, Changes()
                batch.fence = self.fence
                for attempt, wait in enumerate((*RETRY_S, None)):
                    try:
                        started = time.perf_counter()
                        await self.store.apply(self.key, batch)
                        metrics.STORE_WRITE.observe(time.perf_counter() - started)
                        self.writes += 1
                        self._moved(settled=batch.seq)
                        break
                    except Stale:
                        self._went_stale()
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

    def _went_stale(self) -> None:
        log.warning("another bot claimed a conversation this one served; it stops serving it")
        metrics.STORE_STALE.inc()
        self.stale = True
        self._pending = Changes()
        self._moved()
        self._on_stale()

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
        await self.flush(timeout)
