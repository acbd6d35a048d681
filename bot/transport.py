"""The seam between a room and the dispatcher: the dispatcher never touches `rtc`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .protocol.errors import BotError


@dataclass(frozen=True)
class Packet:
    """One inbound data packet. `sender` is the identity the server stamped, or None.
    `refused`: the transport would not take the message (a text stream over its
    limits): the dispatcher answers this error in order with the sender's others."""

    sender: str | None
    topic: str
    data: bytes
    refused: BotError | None = None


@dataclass(frozen=True)
class Peer:
    identity: str
    name: str
    kind: str
    attributes: Mapping[str, str] = field(default_factory=dict)


class PacketSink(Protocol):
    """What a transport feeds. Both calls are synchronous and must not block."""

    def on_packet(self, packet: Packet) -> None: ...

    def on_participant_left(self, identity: str) -> None: ...

    def senders(self) -> list[str]:
        """Who has a conversation now (to reconcile after a reconnect)."""
        ...


class Transport(Protocol):
    async def send(self, identity: str, topic: str, payload: str) -> None:
        """Send one packet reliably to exactly one participant."""
        ...

    def peers(self) -> list[Peer]:
        """The other participants in the room, for tools."""
        ...

    def peer(self, identity: str) -> Peer | None:
        """One of them by identity (None: not in the room, or not announced yet)."""
        ...
