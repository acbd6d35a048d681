"""Everything the bot keeps for one sender in one room."""

from __future__ import annotations

import asyncio
import logging

from ..config import Settings
from ..protocol.chunking import Reassembler
from ..protocol.codec import peek
from ..protocol.codes import ErrorCode
from ..protocol.errors import BotError, Busy
from ..protocol.outbound import Error, ErrorInfo, TurnEnd
from ..store import ConversationKey, Lease, MemoryStore, Store
from ..store.model import now_ms
from ..turns.engine import TurnEngine
from ..turns.queue import TurnQueue
from .history import History
from .idempotency import IdempotencyWindow
from .journal import Journal
from .outbox import Outbox
from .ratelimit import TokenBucket
from .tasks import supervise
from .transport import Packet, Transport

log = logging.getLogger(__name__)

# turn.end.reason of a turn whose worker died while running it (status failed)
INTERRUPTED = "interrupted"


class Conversation:
    def __init__(
        self,
        identity: str,
        settings: Settings,
        transport: Transport,
        engine: TurnEngine,
        *,
        key: ConversationKey | None = None,
        store: Store | None = None,
    ) -> None:
        self.identity = identity
        self.key = key or ConversationKey("", identity)
        self.journal = Journal(
            store or MemoryStore(),
            self.key,
            lease_ttl_s=settings.store_lease_ttl,
            publish_wait_s=settings.store_publish_wait,
        )
        self.outbox = Outbox(
            transport,
            identity,
            max_packet=settings.max_packet,
            window=settings.resume_window,
            journal=self.journal,
        )
        self.history = History(settings.history_max_items, self.journal)
        self.ids = IdempotencyWindow(settings.dedupe_window, self.journal)
        self.bucket = TokenBucket(burst=settings.rate_burst, per_second=settings.rate_per_second)
        self.chunks = Reassembler(max_bytes=settings.max_message_bytes)
        self.turns = TurnQueue(engine, self.outbox, self.history, self.journal)
        self.inbox: asyncio.Queue[Packet] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None
        self.restored = False
        self._orphans: set[asyncio.Task[None]] = set()

    async def restore(self) -> None:
        """Continue what the store holds for this sender: seq, resume window, history,
        remembered ids; turns left running by a worker that died are ended. A store that
        cannot be read is logged and the conversation starts empty (serving beats
        waiting)."""
        if self.restored:
            return
        self.restored = True
        try:
            state = await self.journal.store.load(self.key)
        except Exception as e:
            log.error("could not read the stored conversation (%s); starting it empty", e)
            return
        self.outbox.restore(state.seq, state.sent)
        self.history.restore(state.history)
        self.ids.restore(state.ids)
        for lease in state.leases:
            task = supervise(self._settle(lease), name="orphan-turn")
            self._orphans.add(task)
            task.add_done_callback(self._orphans.discard)

    async def _settle(self, lease: Lease) -> None:
        """A stored lease: wait until it expires unrenewed, then end its turn for the
        client (`failed`, reason `interrupted`). Its owner ending it first is fine too."""
        store = self.journal.store
        while True:
            wait_ms = lease.until_ms - now_ms()
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000 + 0.05)
            current = await store.lease(self.key, lease.turn)
            if current is None:
                return  # its worker ended it after all
            if current.until_ms <= now_ms():
                break
            lease = current  # still renewed: its worker is alive
        log.warning("turn %s was left running by a worker that stopped; ending it", lease.turn)
        self.outbox.put(
            TurnEnd(
                turn=lease.turn,
                reply_to=lease.request_id,
                status="failed",
                reason=INTERRUPTED,
                error=ErrorInfo(
                    code=ErrorCode.INTERNAL_ERROR,
                    message="the worker running this turn stopped; send the message again",
                    retryable=True,
                ),
            ),
            lease.topic,
        )
        self.journal.lease_end(lease.turn)

    def send_error(self, error: BotError, *, reply_to: str | None, topic: str) -> None:
        self.outbox.put(
            Error(
                code=error.code,
                message=error.message,
                retryable=error.retryable,
                details=error.details,
                retry_after_ms=error.retry_after_ms,
                reply_to=reply_to,
            ),
            topic,
        )

    def refuse(self, packet: Packet, error: BotError) -> None:
        """Answer a packet that will not be decoded (a flood, a shutdown) with `error`.
        A chunk frame refuses its whole message, once."""
        seen = peek(packet.data)
        reply_to = seen.id
        if seen.of is not None:
            if self.chunks.in_progress(seen.of) and seen.of not in self.chunks.pending:
                return  # that message was already refused
            self.chunks.refuse(seen.of)
            reply_to = seen.of
        self.send_error(error, reply_to=reply_to, topic=packet.topic)

    async def aclose(self, *, reason: str, notify: bool, timeout: float = 5.0) -> None:
        """End every turn; with `notify`, the sender still gets each `turn.end`, and
        every packet still waiting to be read is answered `busy`."""
        if not notify:
            self.outbox.detach()  # still recorded: a resume after a rejoin replays it
        for task in self._orphans:
            task.cancel()
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        if notify:
            while not self.inbox.empty():
                self.refuse(self.inbox.get_nowait(), Busy("the bot is restarting; send it again"))
        self.turns.cancel_all(reason)
        await self.turns.wait_idle(timeout)
        if notify:
            await self.outbox.flush(timeout)
        await self.outbox.aclose()
        await self.journal.aclose(timeout)
