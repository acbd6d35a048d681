"""An in-memory Transport and a client view of what it delivered, for fast tests."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

from ..protocol.chunking import Reassembler, receive
from ..protocol.codec import parse_bot_message
from ..protocol.outbound import BotMessage
from ..transport import Packet, PacketSink, Peer


class MemoryTransport:
    """Delivers every packet the bot sends into a per-recipient inbox."""

    def __init__(self, peers: list[Peer] | None = None) -> None:
        self.sink: PacketSink | None = None
        self._peers = peers or []
        self.sent: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._arrived = asyncio.Condition()

    def attach(self, sink: PacketSink) -> None:
        self.sink = sink

    async def send(self, identity: str, topic: str, payload: str) -> None:
        self.sent[identity].append((topic, payload))
        async with self._arrived:
            self._arrived.notify_all()

    def peers(self) -> list[Peer]:
        return list(self._peers)

    def peer(self, identity: str) -> Peer | None:
        return next((p for p in self._peers if p.identity == identity), None)

    def inject(
        self, sender: str | None, data: bytes | str | dict[str, Any], topic: str = "lkbot"
    ) -> None:
        if isinstance(data, dict):
            data = json.dumps(data)
        if isinstance(data, str):
            data = data.encode()
        assert self.sink is not None, "attach a sink first"
        self.sink.on_packet(Packet(sender=sender, topic=topic, data=data))

    def messages(self, identity: str) -> list[BotMessage]:
        return reassemble([p for _, p in self.sent[identity]])

    async def wait_for(
        self, identity: str, predicate: Any, timeout: float = 10.0
    ) -> list[BotMessage]:
        """Wait (bounded) until the recipient's messages satisfy `predicate`."""

        async def until() -> list[BotMessage]:
            async with self._arrived:
                while True:
                    msgs = self.messages(identity)
                    if predicate(msgs):
                        return msgs
                    await self._arrived.wait()

        return await asyncio.wait_for(until(), timeout)


def reassemble(payloads: list[str]) -> list[BotMessage]:
    """Bot packets -> messages, joining chunk frames the way a client must."""
    frames = Reassembler(max_bytes=64 * 2**20, max_pending=64)
    wholes = (receive(frames, payload) for payload in payloads)
    return [parse_bot_message(whole) for whole in wholes if whole is not None]
