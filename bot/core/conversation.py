"""Everything the bot keeps for one sender in one room."""

from __future__ import annotations

import asyncio

from ..config import Settings
from ..protocol.chunking import Reassembler
from ..protocol.codec import peek
from ..protocol.errors import BotError, Busy
from ..protocol.outbound import Error
from ..turns.engine import TurnEngine
from ..turns.queue import TurnQueue
from .history import History
from .idempotency import IdempotencyWindow
from .outbox import Outbox
from .ratelimit import TokenBucket
from .transport import Packet, Transport


class Conversation:
    def __init__(
        self, identity: str, settings: Settings, transport: Transport, engine: TurnEngine
    ) -> None:
        self.identity = identity
        self.outbox = Outbox(
            transport, identity, max_packet=settings.max_packet, window=settings.resume_window
        )
        self.history = History(settings.history_max_items)
        self.ids = IdempotencyWindow(settings.dedupe_window)
        self.bucket = TokenBucket(burst=settings.rate_burst, per_second=settings.rate_per_second)
        self.chunks = Reassembler(max_bytes=settings.max_message_bytes)
        self.turns = TurnQueue(engine, self.outbox, self.history)
        self.inbox: asyncio.Queue[Packet] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None

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
            await self.outbox.aclose()
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
