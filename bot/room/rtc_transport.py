"""The Transport over a real `rtc.Room`."""

from __future__ import annotations

import asyncio
import logging

from livekit import rtc

from .. import sdk
from ..protocol.errors import BotError, InvalidMessage, PayloadTooLarge
from ..tasks import supervise
from ..transport import Packet, PacketSink, Peer
from . import lk_chat, options
from .lane import PublishLane
from .lk_chat import TranscriptionMirror

log = logging.getLogger(__name__)

_KIND_NAMES = {
    rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD: "standard",
    rtc.ParticipantKind.PARTICIPANT_KIND_AGENT: "agent",
    rtc.ParticipantKind.PARTICIPANT_KIND_SIP: "sip",
    rtc.ParticipantKind.PARTICIPANT_KIND_INGRESS: "ingress",
    rtc.ParticipantKind.PARTICIPANT_KIND_EGRESS: "egress",
}


# After the bot's own connection came back: how long people get to be announced again
# (non-publishers come in 3 s batches) before those still missing count as gone.
REJOIN_GRACE_S = 20.0
# LiveKit's useAgent (components-react 2.9) reads the agent's state only from attribute
# change events (and only the changed keys) after it found the agent: a client that
# finds the bot with `lk.agent.state` already set never sees it, and fails after 20 s
# ("did not complete initializing"). So when someone joins, the bot moves its state
# through another state back to what it was: at once, and once more this much later
# (the page may subscribe to the agent's events after the first change arrived). That
# state is a ready one (`thinking`, or `listening` while it thinks): the attribute is
# the room's, and a page that disables its input while the agent is not ready (LiveKit's
# starters, web/react.tsx) lost what its user was typing whenever someone else joined.
GREET_AGAIN_S = 2.0
READY_STATES = ("listening", "thinking")


class RoomTransport:
    def __init__(
        self,
        room: rtc.Room,
        *,
        rejoin_grace: float = REJOIN_GRACE_S,
        lk_chat_topic: str | None = None,
        stream_limits: lk_chat.StreamLimits | None = None,
    ) -> None:
        """`lk_chat_topic`: serve LiveKit's own chat UIs (`lk_chat.py`), feeding their
        messages to the dispatcher as if sent on this topic of ours; None: ignore them."""
        self._room = room
        self._rejoin_grace = rejoin_grace
        self._away = False  # our connection is being re-established
        self._lk_chat_topic = lk_chat_topic
        self._state_task: asyncio.Task[None] | None = None
        self._greet_again: asyncio.TimerHandle | None = None
        self._greet = False  # the state task passes through another ready state first
        self.mirror = TranscriptionMirror(self._open_transcription, self._want_state)
        self.streams = lk_chat.StreamGate(stream_limits or lk_chat.StreamLimits())
        self._gone: set[str] = set()  # left (the relay ignores them until they are back)
        self._lane = PublishLane(self._publish_now)

    def attach(self, sink: PacketSink) -> None:
        """Register the room callbacks; call before `connect` so no packet is missed."""

        chat_topic = self._lk_chat_topic

        # Room.on() takes sync callbacks only; the sink queues work, it never awaits.
        def on_data(packet: rtc.DataPacket) -> None:
            sender = packet.participant.identity if packet.participant else None
            if chat_topic is not None and packet.topic == lk_chat.LEGACY_TOPIC:
                legacy = lk_chat.legacy_message(packet.data)
                if legacy is not None:  # an old client's chat (no text streams)
                    data = lk_chat.chat_message(legacy[1], legacy[0])
                    sink.on_packet(Packet(sender=sender, topic=chat_topic, data=data))
                return
            sink.on_packet(Packet(sender=sender, topic=packet.topic or "", data=packet.data))

        gate = self.streams

        def on_chat_stream(reader: rtc.TextStreamReader, identity: str) -> None:
            stream_id = reader.info.stream_id
            rid = lk_chat.request_id(stream_id)

            def refuse(error: BotError) -> None:
                error.reply_to = rid
                data = lk_chat.chat_message("", stream_id)  # names the id; never decoded
                sink.on_packet(Packet(identity, chat_topic or "", data, refused=error))

            refusal = gate.admit(identity, stream_id)
            if refusal is not None:
                reader.close()  # its FFI subscription goes now, not when the stream ends
                refuse(refusal)
                return

            async def read() -> None:
                limits = gate.limits
                try:
                    async with asyncio.timeout(limits.deadline_s):
                        text = await lk_chat.read_capped(reader, limits.max_bytes)
                except lk_chat.StreamTooLarge as e:
                    refuse(PayloadTooLarge(f"{e}; send a shorter one"))
                    return
                except TimeoutError:
                    refuse(
                        InvalidMessage(f"the message did not end within {limits.deadline_s:g} s")
                    )
                    return
                except rtc.StreamError as e:  # aborted by its sender, or by the SDK's cap
                    refuse(PayloadTooLarge(f"the message's stream was cut off ({e})"))
                    return
                finally:
                    reader.close()
                    gate.done(identity)
                data = lk_chat.chat_message(text, stream_id)
                sink.on_packet(Packet(sender=identity, topic=chat_topic or "", data=data))

            supervise(read(), name="lk.chat stream")

        if chat_topic is not None:
            self._room.register_text_stream_handler(lk_chat.CHAT_TOPIC, on_chat_stream)
            self._room.on("participant_connected", self._joined)

        def on_left(participant: rtc.RemoteParticipant) -> None:
            # While the bot reconnects, the SDK reports everyone as gone: that is not
            # a departure (the conversation and its running turn must live on).
            if self._away or self._room.connection_state != rtc.ConnectionState.CONN_CONNECTED:
                return
            self._left(participant.identity)
            sink.on_participant_left(participant.identity)

        def on_reconnecting() -> None:
            self._away = True

        def on_reconnected() -> None:
            self._away = False
            asyncio.get_running_loop().call_later(self._rejoin_grace, reconcile)

        def reconcile() -> None:
            if self._away:
                return  # away again: the next reconnect reconciles
            for identity in sink.senders():
                if identity not in self._room.remote_participants:
                    self._left(identity)
                    sink.on_participant_left(identity)

        self._room.on("data_received", on_data)
        self._room.on("participant_disconnected", on_left)
        self._room.on("reconnecting", on_reconnecting)
        self._room.on("reconnected", on_reconnected)

    def _left(self, identity: str) -> None:
        if self._lk_chat_topic is not None:
            self._gone.add(identity)
            supervise(self.mirror.left(identity), name="lk.chat relay: left")

    async def send(self, identity: str, topic: str, payload: str) -> None:
        await sdk.publish(self._room.local_participant, payload, topic=topic, to=identity)
        await self._relay(identity, payload)

    def submit(self, identity: str, topic: str, payload: str) -> asyncio.Future[None] | None:
        """Hand the packet over now; the future is done once it went out. None: use
        `send` (this SDK cannot, or the packet is rendered for a LiveKit chat user, which
        happens after it went out, one after another). Packets handed over one after
        another go out in that order (see `sdk.ffi_routing.publish_now`)."""
        if self._lk_chat_topic is not None and lk_chat.rendered(payload):
            return None
        return self._lane.submit(identity, topic, payload)

    async def quiet(self) -> None:
        """Until the room's publishing is quiet: what can wait (an answer outside the
        run of seqs, e.g. to a flood) is handed over then (see `lane`)."""
        await self._lane.quiet()

    def _publish_now(self, identity: str, topic: str, payload: str) -> asyncio.Future[None] | None:
        return sdk.publish_now(self._room.local_participant, payload, topic=topic, to=identity)

    async def _relay(self, identity: str, payload: str) -> None:
        # someone gone gets no relay (a packet that went out as they left would put
        # their turn back into the room's state after `_left` cleared it); someone not
        # announced yet does (non-publishers are announced in 3 s batches)
        if self._lk_chat_topic is not None and identity not in self._gone:
            await self.mirror.sent(identity, payload)

    async def _open_transcription(
        self, identity: str, attributes: dict[str, str]
    ) -> rtc.TextStreamWriter:
        return await self._room.local_participant.stream_text(
            destination_identities=[identity],
            topic=lk_chat.TRANSCRIPTION_TOPIC,
            attributes=attributes,
        )

    def _joined(self, participant: rtc.RemoteParticipant) -> None:
        self._gone.discard(participant.identity)
        self.greet()

    def greet(self) -> None:
        """Re-announce `lk.agent.state` now and again GREET_AGAIN_S later (see above)."""
        if self._lk_chat_topic is None:
            return
        self._publish_greeting()
        if self._greet_again is None:

            def again() -> None:
                self._greet_again = None
                self._publish_greeting()

            self._greet_again = asyncio.get_running_loop().call_later(GREET_AGAIN_S, again)

    def _publish_greeting(self) -> None:
        self._greet = True
        self._want_state(self.mirror.state)

    def close(self) -> None:
        if self._greet_again is not None:
            self._greet_again.cancel()

    def _want_state(self, state: str) -> None:
        """`lk.agent.state` follows the mirror's; one update in flight at a time, the
        last wanted state wins."""
        if self._state_task is None or self._state_task.done():
            self._state_task = supervise(self._publish_state(), name="lk.agent.state")

    async def _publish_state(self) -> None:
        published = None
        unsure = False  # an update went unanswered: it may reach the server after a later one
        while self._room.isconnected():
            if self._greet:  # someone joined: through another ready state, then the state
                self._greet = False
                state = self.mirror.state
                published = READY_STATES[1] if state == READY_STATES[0] else READY_STATES[0]
            elif published != self.mirror.state:
                published = self.mirror.state
            elif unsure:  # the last state once more, so that it is the last one applied
                unsure = False
            else:
                return
            answered = await options.set_attributes(
                self._room.local_participant, {lk_chat.AGENT_STATE: published}
            )
            unsure = unsure or not answered

    def peers(self) -> list[Peer]:
        return [_peer(p) for p in self._room.remote_participants.values()]

    def peer(self, identity: str) -> Peer | None:
        p = self._room.remote_participants.get(identity)
        return _peer(p) if p is not None else None


def _peer(p: rtc.RemoteParticipant) -> Peer:
    return Peer(
        identity=p.identity,
        name=p.name,
        kind=_KIND_NAMES.get(p.kind, "other"),
        attributes=p.attributes,
    )
