"""BotClient's handshake, with the room stubbed out: what it sends is answered by a
script here, what comes back goes through the client's own receiving path."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from livekit import rtc

from bot.client.bot_client import BotClient
from bot.protocol.attributes import PROTOCOL_ATTRIBUTE
from bot.protocol.outbound import Ack, Error, Limits, SessionReady, ToolCall


def ready(reply_to: str, seq: int) -> SessionReady:
    limits = Limits(
        max_packet=15000,
        max_text_chars=8000,
        max_message_bytes=65536,
        max_queue=8,
        rate_burst=10,
        rate_per_second=2.0,
        history_max_items=50,
    )
    return SessionReady(
        id=f"b{seq}",
        seq=seq,
        ts=1,
        reply_to=reply_to,
        protocol="1.0",
        features=[],
        limits=limits,
        tools=[],
    )


class Scripted(BotClient):
    """Hellos are recorded and go to `on_hello`; nothing reaches a room."""

    def __init__(self) -> None:
        super().__init__()
        self.hellos: list[str] = []
        self.on_hello = lambda: None

    async def send_raw(self, payload: bytes | str, *, topic: str | None = None) -> None:
        body: dict[str, Any] = json.loads(payload)
        assert body["type"] == "session.hello"
        self.hellos.append(body["id"])
        asyncio.get_running_loop().call_soon(self.on_hello)

    def receive(self, msg: SessionReady) -> None:
        self.messages.append(msg)
        self._notify()


async def test_the_answer_to_an_earlier_hello_counts() -> None:
    """On a busy box the first hello's answer can come after the second hello was sent;
    it is as good as any. Here only the first hello is ever answered, and only once the
    second has gone out: waiting for the newest one's answer alone never ends."""
    client = Scripted()

    def bot() -> None:
        if len(client.hellos) == 2:
            client.receive(ready(client.hellos[0], seq=1))

    client.on_hello = bot
    got = await asyncio.wait_for(client.hello(attempts=4, first_wait=0.05), 30)
    assert got.reply_to == client.hellos[0]
    assert len(client.hellos) == 2


async def test_unanswered_hellos_end_after_the_attempts() -> None:
    client = Scripted()
    with pytest.raises(TimeoutError):
        await client.hello(attempts=3, first_wait=0.01)
    assert len(client.hellos) == 3


class _Room:
    """What BotClient reads of a room: its remote participants; and what it publishes."""

    def __init__(self, participants: dict[str, Any]) -> None:
        self.remote_participants = participants
        self.published: list[tuple[Any, list[str]]] = []
        self.local_participant = SimpleNamespace(publish_data=self._publish)

    async def _publish(self, payload: Any, **kw: Any) -> None:
        self.published.append((payload, kw["destination_identities"]))


def _participant(identity: str, kind: rtc.ParticipantKind.ValueType) -> Any:
    return SimpleNamespace(identity=identity, kind=kind, attributes={PROTOCOL_ATTRIBUTE: "1"})


async def test_nothing_goes_to_a_participant_that_took_the_bots_identity() -> None:
    client = BotClient()
    bot = _participant("agent-AJ_1", rtc.ParticipantKind.PARTICIPANT_KIND_AGENT)
    room = _Room({bot.identity: bot})
    client.room = room  # type: ignore[assignment]
    client.bot_identity = bot.identity
    await client.send({"type": "ping"})
    assert room.published[-1][1] == ["agent-AJ_1"]
    # the same identity joins again, as a standard participant: it replaced the bot
    room.remote_participants[bot.identity] = _participant(
        bot.identity, rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
    )
    with pytest.raises(RuntimeError, match="not in the room"):
        await client.send({"type": "chat.message", "text": "my secret"})
    assert len(room.published) == 1


async def test_a_long_session_keeps_only_the_last_messages() -> None:
    """BotClient kept every packet it ever received."""
    client = BotClient(keep=3)
    bot = _participant("agent-AJ_1", rtc.ParticipantKind.PARTICIPANT_KIND_AGENT)
    stranger = _participant("eve", rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD)
    for n in range(1, 11):
        pong = json.dumps(
            {"v": 1, "type": "pong", "id": f"b{n}", "seq": n, "ts": 1, "reply_to": "p"}
        )
        for sender in (bot, stranger):
            client._on_data(SimpleNamespace(data=pong.encode(), topic="lkbot", participant=sender))  # type: ignore[arg-type]
    assert [m.id for m in client.messages] == ["b8", "b9", "b10"]
    assert len(client.raw) == 3 and len(client.forged) == 3
    assert client.last_seq == 10


async def test_a_refused_tool_result_is_sent_again_after_the_wait() -> None:
    """A busy sender's tool.result can be refused `rate_limited`: the call would then
    time out in the bot though the tool ran. BotClient sends it again after the wait."""
    client = BotClient()
    sent: list[dict[str, Any]] = []
    taken = asyncio.Event()

    async def send(body: dict[str, Any]) -> str:
        msg_id = f"r{len(sent)}"
        sent.append(body)
        if len(sent) == 1:
            answer: Any = Error(
                id="b1",
                seq=1,
                ts=1,
                reply_to=msg_id,
                code="rate_limited",
                message="slow down",
                retryable=True,
                retry_after_ms=20,
            )
        else:
            answer = Ack(id="b2", seq=2, ts=1, reply_to=msg_id, status="accepted")
            taken.set()
        asyncio.get_running_loop().call_soon(
            lambda: (client.messages.append(answer), client._notify())
        )
        return msg_id

    client.send = send  # type: ignore[method-assign]
    client.tool("where", lambda _args: {"city": "Oslo"})
    client._run_tool(
        ToolCall(id="b0", seq=0, ts=1, reply_to="m", turn="t", call_id="c1", name="where")
    )
    await asyncio.wait_for(taken.wait(), 10)
    assert [b["type"] for b in sent] == ["tool.result", "tool.result"]
    assert sent[0]["output"] == sent[1]["output"] == {"city": "Oslo"}
