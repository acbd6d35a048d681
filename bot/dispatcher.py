"""Packets in, handlers called, errors out: the one place exceptions become `error` messages."""

from __future__ import annotations

import asyncio
import json
import logging

from .config import Settings
from .context import Context, Services
from .engine import TurnEngine
from .errors import BotError, InternalError, InvalidMessage, RateLimited
from .handlers import HANDLERS
from .protocol.client import ChunkFrame, ClientMessage
from .protocol.codec import decode, peek_id
from .session import SenderSession
from .transport import Packet, Transport

log = logging.getLogger(__name__)


def _peek_id(data: bytes) -> str | None:
    """The id of a packet we will not decode (floods), if it has one."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return peek_id(obj) if isinstance(obj, dict) else None


class Dispatcher:
    """Serves every sender in one room. Each sender's packets are handled in order."""

    def __init__(self, settings: Settings, transport: Transport, engine: TurnEngine) -> None:
        self._settings = settings
        self._transport = transport
        self._services = Services(settings=settings, engine=engine)
        self._topics = frozenset(settings.topics)
        self._sessions: dict[str, SenderSession] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def sessions(self) -> dict[str, SenderSession]:
        return self._sessions

    # -- transport callbacks (sync: they only queue work) --

    def on_packet(self, packet: Packet) -> None:
        if self._closed or packet.topic not in self._topics:
            return
        if packet.sender is None:
            # A server SDK's packet, or one from a participant the room has not
            # announced yet: either way there is nobody to answer. Clients
            # handshake with session.hello (retried) before anything else.
            log.info("ignoring a data packet with no known sender (server SDK or not yet joined)")
            return
        session = self._sessions.get(packet.sender)
        if session is None:
            session = self._sessions[packet.sender] = SenderSession(
                packet.sender, self._settings, self._transport, self._services.engine
            )
            session.reader = asyncio.create_task(self._read(session), name="sender-reader")
        if session.inbox.qsize() >= self._settings.rate_burst * 2:
            # A flood: answer now instead of letting the inbox grow without bound.
            err = RateLimited("too many messages; slow down", retry_after_ms=1000)
            session.send_error(err, reply_to=_peek_id(packet.data), topic=packet.topic)
            return
        session.inbox.put_nowait(packet)

    def on_participant_left(self, identity: str) -> None:
        session = self._sessions.pop(identity, None)
        if session is None:
            return
        task = asyncio.create_task(session.aclose(reason="participant_left", notify=False))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self, *, timeout: float = 5.0) -> None:
        """Shut down: every running turn ends (`cancelled`, reason `shutdown`), sent."""
        if self._closed:
            return
        self._closed = True
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(
            *(s.aclose(reason="shutdown", notify=True, timeout=timeout) for s in sessions),
            *self._closing,
            return_exceptions=True,
        )

    # -- per-sender processing --

    async def _read(self, session: SenderSession) -> None:
        while True:
            packet = await session.inbox.get()
            for of in session.chunks.expire():
                err = InvalidMessage("chunked message expired before all its frames arrived")
                session.send_error(err, reply_to=of, topic=packet.topic)
            await self._handle(session, packet)

    async def _handle(self, session: SenderSession, packet: Packet) -> None:
        reply_to: str | None = None
        try:
            wait_ms = session.bucket.take()
            if wait_ms:
                reply_to = _peek_id(packet.data)
                raise RateLimited("too many messages; slow down", retry_after_ms=wait_ms)
            msg: ClientMessage = decode(packet.data, max_bytes=self._settings.max_packet)
            reply_to = msg.id
            if isinstance(msg, ChunkFrame):
                reply_to = msg.of
                whole = session.chunks.feed(msg)
                if whole is None:
                    return  # frames are framing, not messages: no answer of their own
                msg = decode(whole, max_bytes=self._settings.max_message_bytes)
                reply_to = msg.id
                if isinstance(msg, ChunkFrame):
                    raise InvalidMessage("a chunked message cannot itself be a chunk frame")
            ctx = Context(session, self._services, msg.id, packet.topic)
            await HANDLERS[type(msg)](msg, ctx)
        except BotError as e:
            session.send_error(e, reply_to=e.reply_to or reply_to, topic=packet.topic)
        except Exception:
            log.exception("handler failed")
            err = InternalError("the bot hit an internal error handling this message")
            session.send_error(err, reply_to=reply_to, topic=packet.topic)
