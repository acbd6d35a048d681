"""The Transport over a real `rtc.Room`."""

from __future__ import annotations

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


class RoomTransport:
    def __init__(self, room: rtc.Room) -> None:
        self._room = room

    def attach(self, sink: PacketSink) -> None:
        """Register the room callbacks; call before `connect` so no packet is missed."""

        # Room.on() takes sync callbacks only; the sink queues work, it never awaits.
        def on_data(packet: rtc.DataPacket) -> None:
            sender = packet.participant.identity if packet.participant else None
            sink.on_packet(Packet(sender=sender, topic=packet.topic or "", data=packet.data))

        def on_left(participant: rtc.RemoteParticipant) -> None:
            sink.on_participant_left(participant.identity)

        self._room.on("data_received", on_data)
        self._room.on("participant_disconnected", on_left)

    async def send(self, identity: str, topic: str, payload: str) -> None:
        await self._room.local_participant.publish_data(
            payload, reliable=True, destination_identities=[identity], topic=topic
        )

    def peers(self) -> list[Peer]:
        return [
            Peer(identity=p.identity, name=p.name, kind=_KIND_NAMES.get(p.kind, "other"))
            for p in self._room.remote_participants.values()
        ]
