"""The Transport over a real `rtc.Room`."""

from __future__ import annotations

import asyncio
import logging

from livekit import rtc

from ..core.transport import Packet, PacketSink, Peer

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


class RoomTransport:
    def __init__(self, room: rtc.Room, *, rejoin_grace: float = REJOIN_GRACE_S) -> None:
        self._room = room
        self._rejoin_grace = rejoin_grace
        self._away = False  # our connection is being re-established

    def attach(self, sink: PacketSink) -> None:
        """Register the room callbacks; call before `connect` so no packet is missed."""

        # Room.on() takes sync callbacks only; the sink queues work, it never awaits.
        def on_data(packet: rtc.DataPacket) -> None:
            sender = packet.participant.identity if packet.participant else None
            sink.on_packet(Packet(sender=sender, topic=packet.topic or "", data=packet.data))

        def on_left(participant: rtc.RemoteParticipant) -> None:
            # While the bot reconnects, the SDK reports everyone as gone: that is not
            # a departure (the conversation and its running turn must live on).
            if self._away or self._room.connection_state != rtc.ConnectionState.CONN_CONNECTED:
                return
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
                    sink.on_participant_left(identity)

        self._room.on("data_received", on_data)
        self._room.on("participant_disconnected", on_left)
        self._room.on("reconnecting", on_reconnecting)
        self._room.on("reconnected", on_reconnected)

    async def send(self, identity: str, topic: str, payload: str) -> None:
        await self._room.local_participant.publish_data(
            payload, reliable=True, destination_identities=[identity], topic=topic
        )

    def peers(self) -> list[Peer]:
        return [
            Peer(identity=p.identity, name=p.name, kind=_KIND_NAMES.get(p.kind, "other"))
            for p in self._room.remote_participants.values()
        ]
