"""Per-recipient ordered sending: stamps `seq`/`ts`/`id`, frames oversized messages."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .. import metrics
from ..protocol.chunking import split
from ..protocol.codec import encode
from ..protocol.codes import ErrorCode
from ..protocol.outbound import BotEnvelope, Error, HistoryPage
from ..store import SentRecord
from ..tasks import supervise
from ..transport import Transport
from .clock import now_ms
from .journal import Journal

log = logging.getLogger(__name__)

IN_FLIGHT = 64  # packets handed to the transport and not answered yet, per recipient


@dataclass(frozen=True)
class _Sent:
    """A message as sent, kept for replay."""

    seq: int
    id: str
    topic: str
    text: str  # its JSON
    size: int  # UTF-8 bytes of `text`


def _kept_as(msg: BotEnvelope, sent: _Sent) -> _Sent:
    """What a resume replays in place of `msg`: the message itself, except a history
    page (the conversation's texts again, up to a page of bytes each time it is asked
    for): in its place, with its seq and id, a `resume_gap` answering the same
    `history.get`."""
    if not isinstance(msg, HistoryPage):
        return sent
    gap = Error(
        code=ErrorCode.RESUME_GAP,
        message="a history page is not kept for a resume: send history.get again",
        retryable=False,
        reply_to=msg.reply_to,
    ).model_copy(update={"id": msg.id, "seq": msg.seq, "ts": msg.ts})
    text = encode(gap)
    return _Sent(sent.seq, sent.id, sent.topic, text, len(text.encode()))


class Outbox:
    """One conversation's bot -> client stream.

    `put` is synchronous: seq order is fixed the moment a message is queued, and one
    task publishes frames strictly in that order, so `seq` has no gaps and a chunked
    message's frames are never interleaved with anything else.

    The last messages sent are kept (a window bounded by count and bytes) so that a
    client that lost some (LiveKit drops packets published while a connection is
    being re-established, without an error) can have them again: `replay`.
    """

    def __init__(
        self,
        transport: Transport,
        identity: str,
        *,
        max_packet: int,
        window: int = 256,
        window_bytes: int = 1 << 20,
        journal: Journal | None = None,
    ) -> None:
        self._transport = transport
        self._identity = identity
        self._max_packet = max_packet
        self._seq = 0
        self._queue: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._window: deque[_Sent] = deque()
        self._window_max = window
        self._window_bytes_max = window_bytes
        self._window_bytes = 0
        self._journal = journal
        self._detached = False
        self._in_flight: deque[asyncio.Future[None]] = deque()  # handed over, unanswered
        # ids: `b<seq>-<nonce>` (a seq is this conversation's once; the nonce tells
        # apart what two bots stamped), `b0-<nonce><n>` outside the run of seqs. Drawn
        # once: a flood answered from the OS's entropy per packet showed in its profile
        self._nonce = secrets.token_hex(3)
        self._unsequenced = 0

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def first_kept(self) -> int:
        """The oldest seq `replay` can still send (last_seq + 1 when none is kept)."""
        return self._window[0].seq if self._window else self._seq + 1

    def replay(self, after: int) -> bool:
        """Send again, in order, every message with seq > `after`; False (and nothing
        sent) when the window no longer holds all of them."""
        if after >= self._seq:
            return True
        if after + 1 < self.first_kept:
            return False
        for sent in self._window:
            if sent.seq > after:
                self._enqueue(sent)
        return True

    def restore(self, seq: int, sent: list[SentRecord]) -> None:
        """Continue a stored conversation: its seq counter and its replay window."""
        for r in sent:
            self._keep(_Sent(r.seq, r.id, r.topic, r.text, len(r.text.encode())))
        self._seq = max([seq, self._seq, *(r.seq for r in sent)])

    def detach(self) -> None:
        """The recipient is gone: keep stamping and recording (a resume after they come
        back replays it), publish nothing."""
        self._detached = True

    def _keep(self, sent: _Sent) -> None:
        self._window.append(sent)
        self._window_bytes += sent.size
        while self._window and (
            len(self._window) > self._window_max or self._window_bytes > self._window_bytes_max
        ):
            self._window_bytes -= self._window.popleft().size

    def _enqueue(self, sent: _Sent) -> None:
        if self._detached:
            return
        if sent.size <= self._max_packet:
            self._queue.put_nowait((sent.seq, sent.topic, sent.text))
        else:
            for frame in split(sent.text, of=sent.id, max_packet=self._max_packet):
                self._queue.put_nowait((sent.seq, sent.topic, frame))
        if self._task is None:
            self._start_pump()

    def _start_pump(self) -> None:
        self._task = supervise(self._pump(), name="outbox", on_crash=self._restart_pump)

    def _restart_pump(self, _: BaseException) -> None:
        self._task = None
        if not self._closed and not self._queue.empty():
            self._start_pump()

    def put(self, msg: BotEnvelope, topic: str, *, sequenced: bool = True) -> BotEnvelope:
        """Stamp and queue `msg`. Unsequenced (`seq` 0: outside the run of seqs, never
        kept for a resume) only for answers given before the conversation could be
        read from the store, which has its counter."""
        if self._closed:
            return msg
        if not sequenced:
            stamped = msg.model_copy(
                update={"id": self._unsequenced_id(), "seq": 0, "ts": now_ms()}
            )
            text = encode(stamped)
            metrics.observe_sent(stamped)
            self._enqueue(_Sent(0, stamped.id, topic, text, len(text.encode())))
            return stamped
        self._seq += 1
        stamped = msg.model_copy(
            update={"id": f"b{self._seq}-{self._nonce}", "seq": self._seq, "ts": now_ms()}
        )
        text = encode(stamped)
        sent = _Sent(self._seq, stamped.id, topic, text, len(text.encode()))
        kept = _kept_as(stamped, sent)
        self._keep(kept)
        metrics.observe_sent(stamped)
        if self._journal is not None:
            self._journal.sent(SentRecord(kept.seq, kept.id, topic, kept.text))
        self._enqueue(sent)
        return stamped

    def _unsequenced_id(self) -> str:
        self._unsequenced += 1
        return f"b0-{self._nonce}{self._unsequenced}"

    def put_fields(self, fields: dict[str, object], topic: str) -> None:
        """An unsequenced message given as its JSON fields, without a model: the cheap
        answer to a flood (`Conversation.send_error`). The fields are the message's as
        its model would encode them (tests/test_dispatcher.py checks the two agree)."""
        if self._closed:
            return
        msg_id = self._unsequenced_id()
        body = {"v": 1, "id": msg_id, "seq": 0, "ts": now_ms(), **fields}
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        metrics.MESSAGES.labels(str(fields["type"])).inc()
        self._enqueue(_Sent(0, msg_id, topic, text, len(text.encode())))

    def forget(self) -> None:
        """history.reset: nothing sent so far can be replayed (the store's window too)."""
        self._window.clear()
        self._window_bytes = 0
        if self._journal is not None:
            self._journal.forget()

    async def _pump(self) -> None:
        """Publish in seq order. A transport that can take a packet without waiting for
        the one before to be answered (`submit`) gets each as soon as the store has it:
        up to IN_FLIGHT unanswered, answers awaited when nothing else is ready."""
        submit = getattr(self._transport, "submit", None)
        in_flight = self._in_flight
        try:
            await self._publish(submit, getattr(self._transport, "quiet", None), in_flight)
        finally:
            for answer in in_flight:
                answer.cancel()
            in_flight.clear()

    async def _publish(
        self,
        submit: Callable[[str, str, str], asyncio.Future[None] | None] | None,
        quiet: Callable[[], Awaitable[None]] | None,
        in_flight: deque[asyncio.Future[None]],
    ) -> None:
        while True:
            if in_flight and (self._queue.empty() or len(in_flight) >= IN_FLIGHT):
                await self._answered(in_flight[0])  # in_flight until answered (flush)
                in_flight.popleft()
                continue
            seq, topic, payload = await self._queue.get()
            try:
                # what the client has, the store has; what a stale writer could not
                # store never goes out
                if (
                    self._journal is not None
                    and not self._journal.stored(seq)
                    and not await self._journal.wait_stored(seq)
                ):
                    continue
                if seq == 0 and quiet is not None:
                    await quiet()  # outside the run of seqs: after other users' turns
                answer = submit(self._identity, topic, payload) if submit else None
                if answer is None:
                    await self._transport.send(self._identity, topic, payload)
                else:
                    in_flight.append(answer)
            except Exception as e:
                # e.g. the room closed under us: one line, not a traceback per packet
                log.warning("publish failed, packet dropped: %s", e)
            finally:
                self._queue.task_done()

    @staticmethod
    async def _answered(answer: asyncio.Future[None]) -> None:
        try:
            await answer
        except Exception as e:
            log.warning("publish failed, packet dropped: %s", e)

    async def flush(self, timeout: float) -> None:
        """Wait (bounded) until everything queued went out: handed to the transport,
        and what was handed over without waiting answered (a room left right after a
        flush loses nothing livekit-ffi still had queued)."""
        if self._task is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._queue.join()
                while not all(answer.done() for answer in self._in_flight):
                    await asyncio.wait([a for a in self._in_flight if not a.done()])
        except TimeoutError:
            log.warning("outbox flush timed out with %d packets unsent", self._queue.qsize())

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
