"""Packets in, handlers called, errors out: the one place exceptions become `error` messages."""

from __future__ import annotations

import asyncio
import logging

from .. import metrics
from ..config import Settings
from ..handlers import HANDLERS
from ..llm.tools.grants import Grants
from ..protocol.codec import decode
from ..protocol.errors import BotError, Busy, InternalError, InvalidMessage, RateLimited
from ..protocol.inbound import ChunkFrame, ClientMessage
from ..store import ConversationKey, MemoryStore, Store
from ..tasks import supervise
from ..transport import Packet, Transport
from ..turns.engine import TurnEngine
from .context import Context, Services
from .conversation import Conversation

log = logging.getLogger(__name__)
FRAME_COST = 0.25  # rate-limit tokens a chunk frame costs after its message's first


class Dispatcher:
    """Serves every sender in one room. Each sender's packets are handled in order."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        engine: TurnEngine,
        *,
        store: Store | None = None,
        room: str = "",
    ) -> None:
        """`store` keeps conversations (default: in this dispatcher's memory only);
        `room` names them there, with the sender's identity."""
        self._settings = settings
        self._store: Store = store or MemoryStore()
        self._room = room
        self._transport = transport
        self._services = Services(
            settings=settings, engine=engine, grants=Grants(settings, transport.peer)
        )
        self._topics = frozenset(settings.topics)
        self._conversations: dict[str, Conversation] = {}
        self._closing: set[asyncio.Task[None]] = set()
        # a sender who left: their conversation's last writes, awaited before a rejoin
        # reads it back
        self._leaving: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    @property
    def conversations(self) -> dict[str, Conversation]:
        return self._conversations

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
        conv = self._conversations.get(packet.sender)
        if conv is None:
            sender = packet.sender
            room = "" if self._settings.conversation_scope == "identity" else self._room
            conv = self._conversations[packet.sender] = Conversation(
                packet.sender,
                self._settings,
                self._transport,
                self._services.engine,
                key=ConversationKey(room, packet.sender),
                store=self._store,
                on_stale=self._stale,
                access=lambda: self._services.access(sender),
            )
            self._start_reader(conv)
        if conv.inbox.qsize() >= self._settings.rate_burst * 2:
            # A flood: answer now instead of letting the inbox grow without bound.
            conv.refuse(packet, RateLimited("too many messages; slow down", retry_after_ms=1000))
            return
        conv.inbox.put_nowait(packet)

    def _start_reader(self, conv: Conversation) -> None:
        def restart(exc: BaseException) -> None:
            # _read never raises by design; if it ever does, the sender is not cut off
            if self._conversations.get(conv.identity) is conv:
                self._start_reader(conv)

        conv.reader = supervise(self._read(conv), name="sender-reader", on_crash=restart)

    def senders(self) -> list[str]:
        return list(self._conversations)

    async def hand_over(self, timeout: float) -> None:
        """Start no new turn (a `chat.message` is answered `busy`, retryable: the client
        sends it again, to the bot that takes over) and wait, bounded, until the
        running and queued turns have ended."""
        self._services.handing_over = True
        for conv in self._conversations.values():
            conv.turns.detach_waiting()  # the next bot continues it from the store
        await asyncio.gather(*(c.turns.wait_idle(timeout) for c in self._conversations.values()))

    def _stale(self, conv: Conversation) -> None:
        """Another bot claimed this conversation in the store: this one's writes are
        refused, so it stops serving it. Packets not yet read go to a fresh
        conversation, which claims it back from the store when the sender writes."""
        if self._conversations.get(conv.identity) is not conv:
            return
        self._retire(conv.identity, "superseded")
        while not conv.inbox.empty():
            self.on_packet(conv.inbox.get_nowait())

    def on_participant_left(self, identity: str) -> None:
        self._retire(identity, "participant_left")

    def _retire(self, identity: str, reason: str) -> None:
        conv = self._conversations.pop(identity, None)
        if conv is None:
            return
        task = supervise(conv.aclose(reason=reason, notify=False), name="leave")
        self._closing.add(task)
        self._leaving[identity] = task

        def done(t: asyncio.Task[None]) -> None:
            self._closing.discard(t)
            if self._leaving.get(identity) is t:
                del self._leaving[identity]

        task.add_done_callback(done)

    async def aclose(self, *, timeout: float = 5.0) -> None:
        """Shut down: every running turn ends (`cancelled`, reason `shutdown`), sent."""
        if self._closed:
            return
        self._closed = True
        conversations = list(self._conversations.values())
        self._conversations.clear()
        await asyncio.gather(
            *(s.aclose(reason="shutdown", notify=True, timeout=timeout) for s in conversations),
            *self._closing,
            return_exceptions=True,
        )

    # -- per-sender processing --

    async def _read(self, conv: Conversation) -> None:
        leaving = self._leaving.get(conv.identity)
        if leaving is not None:
            await asyncio.wait({leaving})  # its last writes first
        while not conv.closing:
            packet = await conv.inbox.get()
            if not conv.restored and not await self._restore(conv, packet):
                continue
            if conv.closing:  # redis-py can swallow the cancel of an awaited call
                conv.refuse(packet, Busy("the bot is restarting; send it again"))
                return
            try:
                for of in conv.chunks.expire():
                    err = InvalidMessage("chunked message expired before all its frames arrived")
                    conv.send_error(err, reply_to=of, topic=packet.topic)
                await self._handle(conv, packet)
            except Exception:  # _handle answers every error; this is a last line
                log.exception("a packet could not be handled")

    @staticmethod
    async def _restore(conv: Conversation, packet: Packet) -> bool:
        """Read the sender's conversation from the store before its first packet is
        handled; a store that cannot be read gets the packet a retryable `busy`."""
        try:
            await conv.restore()
            return True
        except Exception as e:
            log.error("could not read a conversation from the store: %s", e)
            metrics.STORE_UNAVAILABLE.inc()
            conv.refuse(
                packet,
                Busy("the conversation store cannot be read; send it again", retry_after_ms=1000),
            )
            return False

    @staticmethod
    def _charge(conv: Conversation, reply_to: str | None, cost: float = 1.0) -> None:
        """One rate-limit token per message; a chunked message's later frames cost
        FRAME_COST each (a full-size message of 18 frames: 1 + 17/4 tokens)."""
        wait_ms = conv.bucket.take(cost)
        if wait_ms:
            raise RateLimited(
                "too many messages; slow down", reply_to=reply_to, retry_after_ms=wait_ms
            )

    async def _handle(self, conv: Conversation, packet: Packet) -> None:
        reply_to: str | None = None
        try:
            if packet.refused is not None:
                raise packet.refused  # charged by the transport (a stream, when it opened)
            try:
                msg: ClientMessage = decode(packet.data, max_bytes=self._settings.max_packet)
            except BotError as e:
                self._charge(conv, e.reply_to)  # garbage costs like anything else
                raise
            reply_to = msg.id
            if isinstance(msg, ChunkFrame):
                reply_to = msg.of
                if msg.of in conv.chunks.pending or not conv.chunks.in_progress(msg.of):
                    # every frame is charged; past the limit, the whole message is refused
                    first = msg.of not in conv.chunks.pending
                    try:
                        self._charge(conv, msg.of, 1.0 if first else FRAME_COST)
                    except RateLimited:
                        conv.chunks.refuse(msg.of)
                        raise
                else:  # a frame of a message already answered: dropped, but charged
                    conv.bucket.take(FRAME_COST)
                whole = conv.chunks.feed(msg)
                if whole is None:
                    return  # frames are framing, not messages: no answer of their own
                msg = decode(whole, max_bytes=self._settings.max_message_bytes)
                reply_to = msg.id
                if isinstance(msg, ChunkFrame):
                    raise InvalidMessage("a chunked message cannot itself be a chunk frame")
            else:
                self._charge(conv, msg.id)
            ctx = Context(conv, self._services, msg.id, packet.topic)
            await HANDLERS[type(msg)](msg, ctx)
        except BotError as e:
            conv.send_error(e, reply_to=e.reply_to or reply_to, topic=packet.topic)
        except Exception:
            log.exception("handler failed")
            err = InternalError("the bot hit an internal error handling this message")
            conv.send_error(err, reply_to=reply_to, topic=packet.topic)
