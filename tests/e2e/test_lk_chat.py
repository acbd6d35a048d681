"""LiveKit's own chat UIs, as `@livekit/components-react` speaks to an agent, played by
plain `rtc.Room` clients: `sendText` on `lk.chat` (to the whole room) plus the legacy
`lk-chat-topic` packet; replies read from `lk.transcription` streams; the agent's
`lk.agent.state`. No lkbot-specific code on the client side."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from livekit import rtc

from bot.dev.livekit_server import DevServer
from bot.room.options import data_only
from bot.room.tokens import mint_token

from ..harness import script
from .conftest import settings_for
from .procs import Proc

BOUND = 60.0  # bounds the test, never what is tested


@dataclass
class Stream:
    sender: str
    attributes: dict[str, str]  # as the stream opened (its header)
    text: str = ""
    done: bool = False
    closed_with: dict[str, str] = field(default_factory=dict)  # once it ended


@dataclass
class StockUser:
    """What a page built on useSessionMessages/useAgent does, minus the rendering."""

    room: rtc.Room = field(default_factory=rtc.Room)
    streams: list[Stream] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def join(self, lk: DevServer, room: str, identity: str) -> None:
        def on_transcription(reader: rtc.TextStreamReader, sender: str) -> None:
            stream = Stream(sender, dict(reader.info.attributes or {}))
            self.streams.append(stream)

            async def read() -> None:
                async for chunk in reader:
                    stream.text += chunk
                    self.changed.set()
                stream.closed_with = dict(reader.info.attributes or {})
                stream.done = True
                self.changed.set()

            asyncio.get_running_loop().create_task(read())

        self.room.register_text_stream_handler("lk.transcription", on_transcription)
        self.room.on("participant_attributes_changed", lambda *_: self.changed.set())
        self.room.on("participant_connected", lambda *_: self.changed.set())
        token = mint_token(settings_for(lk), room=room, identity=identity)
        await self.room.connect(lk.url, token, data_only())

    async def send(self, text: str, *, ignore_legacy: bool = True) -> str:
        """`setupChat().send`: the text stream, then the legacy packet with its id."""
        info = await self.room.local_participant.send_text(text, topic="lk.chat")
        legacy = {"id": info.stream_id, "timestamp": 0, "message": text}
        await self.room.local_participant.publish_data(
            json.dumps({**legacy, "ignoreLegacy": ignore_legacy}),
            reliable=True,
            topic="lk-chat-topic",
        )
        return info.stream_id

    def agent_state(self) -> str | None:
        for p in self.room.remote_participants.values():
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                return p.attributes.get("lk.agent.state")
        return None

    async def until(self, check: object, timeout: float = BOUND) -> None:
        async def loop() -> None:
            while not check():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)

    def finished(self) -> list[Stream]:
        return [s for s in self.streams if s.done]


@pytest.fixture
async def users() -> AsyncIterator[list[StockUser]]:
    made: list[StockUser] = []
    yield made
    for u in made:
        await u.room.disconnect()


async def _user(lk: DevServer, room: str, identity: str, made: list[StockUser]) -> StockUser:
    user = StockUser()
    made.append(user)
    await user.join(lk, room, identity)
    return user


async def test_a_stock_chat_ui_chats_privately_with_the_bot(
    lk: DevServer, worker: Proc, users: list[StockUser]
) -> None:
    room = f"stock-{uuid.uuid4().hex[:8]}"
    alice = await _user(lk, room, "alice", users)
    bob = await _user(lk, room, "bob", users)
    # useAgent: the agent is ready once its state is listening/thinking/speaking
    await alice.until(lambda: alice.agent_state() == "listening")

    await alice.send("hello there")
    await alice.until(lambda: len(alice.finished()) == 1)
    reply = alice.finished()[0]
    assert reply.text == "You said: hello there"
    assert reply.sender.startswith("agent-")
    # final only at the close. (The header says "false"; but on a loaded box the whole
    # stream can be in before the SDK hands it to Python, and it then opens with the
    # trailer's attributes already merged: seen once in a clean-clone run.)
    assert reply.closed_with["lk.transcription_final"] == "true"
    assert reply.attributes["lk.transcription_final"] in ("false", "true")
    assert reply.attributes["lk.segment_id"].startswith("t_")

    # the legacy copy is not a second turn, and bob saw none of alice's reply
    await bob.send("and me?")
    await bob.until(lambda: len(bob.finished()) == 1)
    assert [s.text for s in bob.finished()] == ["You said: and me?"]
    assert len(alice.streams) == 1


async def test_an_old_client_with_only_the_legacy_packet_is_answered_once(
    lk: DevServer, worker: Proc, users: list[StockUser]
) -> None:
    carol = await _user(lk, f"legacy-{uuid.uuid4().hex[:8]}", "carol", users)
    await carol.until(lambda: carol.agent_state() == "listening")
    await carol.send("both copies", ignore_legacy=False)  # a stream and a legacy packet
    await carol.until(lambda: len(carol.finished()) == 1)
    marker = "x" + uuid.uuid4().hex[:6]
    await carol.send(marker)  # what follows shows nothing else was on its way
    await carol.until(lambda: len(carol.finished()) == 2)
    assert [s.text for s in carol.finished()] == ["You said: both copies", f"You said: {marker}"]


async def test_the_agent_state_follows_the_turn_and_errors_read_as_text(
    lk: DevServer, worker: Proc, users: list[StockUser]
) -> None:
    dave = await _user(lk, f"state-{uuid.uuid4().hex[:8]}", "dave", users)
    await dave.until(lambda: dave.agent_state() == "listening")
    seen: list[str] = []
    dave.room.on(
        "participant_attributes_changed",
        lambda changed, _p: (
            seen.append(changed["lk.agent.state"]) if "lk.agent.state" in changed else None
        ),
    )
    await dave.send(script(say="slow words", delay=1))
    await dave.until(lambda: len(dave.finished()) == 1)
    await dave.until(lambda: dave.agent_state() == "listening")
    assert dave.finished()[0].text == "slow words"
    assert "thinking" in seen and seen[-1] == "listening"

    await dave.send(script(status=500))  # the LLM fails: the user reads why
    await dave.until(lambda: len(dave.finished()) == 2)
    assert "[error:" in dave.finished()[1].text


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


async def test_an_oversized_stream_is_refused_without_being_held(
    lk: DevServer, worker: Proc, users: list[StockUser]
) -> None:
    """32 MiB of one letter travels compressed as a few kB; read whole, it took the
    worker 137-233 MiB. The SDK's cap (room options) and ours refuse it early."""
    erin = await _user(lk, f"big-{uuid.uuid4().hex[:8]}", "erin", users)
    await erin.until(lambda: erin.agent_state() == "listening")
    before = _tree_rss(worker.process.pid)
    await erin.room.local_participant.send_text("a" * (32 << 20), topic="lk.chat")
    await erin.until(lambda: len(erin.finished()) == 1)
    grown = _tree_rss(worker.process.pid) - before
    print(f"the worker grew by {grown / 2**20:.1f} MiB")  # 98 MiB before the caps
    assert grown < 64 << 20, f"the worker grew by {grown >> 20} MiB"
    refusal = erin.finished()[0].text
    assert refusal.startswith("[error:") and ("over" in refusal or "cut off" in refusal), refusal
    await erin.send("still there?")  # and the sender is served as before
    await erin.until(lambda: len(erin.finished()) == 2)
    assert erin.finished()[1].text == "You said: still there?"


async def test_streams_left_open_are_capped_per_sender(
    lk: DevServer, worker: Proc, users: list[StockUser]
) -> None:
    """A sender that opens streams and never ends them: two are read at once, the rest
    are refused when they open (charged to the rate limit then), and others are served."""
    room = f"open-{uuid.uuid4().hex[:8]}"
    fay = await _user(lk, room, "fay", users)
    gus = await _user(lk, room, "gus", users)
    await fay.until(lambda: fay.agent_state() == "listening")
    writers = [await fay.room.local_participant.stream_text(topic="lk.chat") for _ in range(12)]
    for w in writers:
        await w.write("partial ")
    # each stream past the second is answered at its opening: busy, or rate limited
    await fay.until(lambda: len(fay.finished()) >= 10)
    assert all(s.text.startswith("[error:") for s in fay.finished())
    assert any("at once" in s.text for s in fay.finished())
    await gus.send("my turn")
    await gus.until(lambda: len(gus.finished()) == 1)
    assert gus.finished()[0].text == "You said: my turn"
    for w in writers:
        await w.aclose()  # the two being read complete now and are answered
    await fay.until(lambda: sum("You said: partial" in s.text for s in fay.finished()) == 2)
