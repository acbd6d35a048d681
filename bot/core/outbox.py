"""Per-recipient ordered sending: stamps `seq`/`ts`/`id`, frames oversized messages."""

from __future__ import annotations

import asyncio
import logging
import secrets

from ..protocol.chunking import split
from ..protocol.codec import encode
from ..protocol.outbound import BotEnvelope
from .clock import now_ms
from .transport import Transport

log = logging.getLogger(__name__)


class Outbox:
    """One conversation's bot -> client stream.

    `put` is synchronous: seq order is fixed the moment a message is queued, and one
    task publishes frames strictly in that order, so `seq` has no gaps and a chunked
    message's frames are never interleaved with anything else.
    """

    def __init__(self, transport: Transport, identity: str, *, max_packet: int) -> None:
        self._transport = transport
        self._identity = identity
        self._max_packet = max_packet
        self._seq = 0
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def last_seq(self) -> int:
        return self._seq

    def put(self, msg: BotEnvelope, topic: str) -> BotEnvelope:
        if self._closed:
            return msg
        self._seq += 1
        stamped = msg.model_copy(
            update={"id": f"b{self._seq}-{secrets.token_hex(3)}", "seq": self._seq, "ts": now_ms()}
        )
        text = encode(stamped)
        if len(text.encode()) <= self._max_packet:
            self._queue.put_nowait((topic, text))
        else:
            for frame in split(text, of=stamped.id, max_packet=self._max_packet):
                self._queue.put_nowait((topic, frame))
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name=f"outbox-{self._identity}")
        return stamped

    async def _pump(self) -> None:
        while True:
            topic, payload = await self._queue.get()
            try:
                await self._transport.send(self._identity, topic, payload)
            except Exception as e:
                # e.g. the room closed under us: one line, not a traceback per packet
                log.warning("publish failed, packet dropped: %s", e)
            finally:
                self._queue.task_done()

    async def flush(self, timeout: float) -> None:
        """Wait (bounded) until everything queued has been handed to the transport."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("outbox flush timed out with %d packets unsent", self._queue.qsize())

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
