"""The bot over a real livekit-server, as a separate worker process, with real rtc clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

from livekit import api, rtc

from bot.client.bot_client import BotClient
from bot.dev.livekit_server import DevServer
from bot.protocol.outbound import Error, HistoryPage, TurnEnd

from ..harness import script
from .conftest import Connect, settings_for
from .procs import ROOT, Proc, start_worker


async def test_two_clients_exchange_a_reliable_packet(lk: DevServer, room: str) -> None:
    """The transport itself, before any bot: loopback WebRTC works on this machine."""
    a, b = rtc.Room(), rtc.Room()
    got: asyncio.Future[rtc.DataPacket] = asyncio.get_running_loop().create_future()
    b.on("data_received", lambda p: got.done() or got.set_result(p))
    s = settings_for(lk)
    from bot.room.tokens import mint_token

    await a.connect(lk.url, mint_token(s, room=room, identity="a"))
    await b.connect(lk.url, mint_token(s, room=room, identity="b"))
    await a.local_participant.publish_data(
        b"hi", reliable=True, destination_identities=["b"], topic="t"
    )
    packet = await asyncio.wait_for(got, 10)
    assert (packet.data, packet.topic, packet.participant.identity) == (b"hi", "t", "a")
    await a.disconnect()
    await b.disconnect()


async def test_opening_the_sending_side_reaches_nobody(lk: DevServer, room: str) -> None:
    """BotClient negotiates its sending connection at join with a packet addressed to
    itself (options.open_sending): the server forwards it to no one, not even to a
    participant listening to everything; the packet sent after it arrives first."""
    from bot.room.tokens import mint_token

    s = settings_for(lk)
    listener = rtc.Room()
    got: list[rtc.DataPacket] = []
    marked = asyncio.Event()

    def on_data(p: rtc.DataPacket) -> None:
        got.append(p)
        if p.topic == "marker":
            marked.set()

    listener.on("data_received", on_data)
    await listener.connect(lk.url, mint_token(s, room=room, identity="listener"))
    client = BotClient()
    await client.join(lk.url, mint_token(s, room=room, identity="user"))
    assert client._opening is not None
    await asyncio.wait_for(client._opening, 30)
    # the same reliable channel, in order: anything forwarded before this comes first
    await client.room.local_participant.publish_data(b"m", reliable=True, topic="marker")
    await asyncio.wait_for(marked.wait(), 30)
    assert [p.topic for p in got] == ["marker"], [p.topic for p in got]
    await client.disconnect()
    await listener.disconnect()


def assert_wire_invariants(client: BotClient) -> None:
    msgs = client.messages
    assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1))
    assert all(len(p.data) <= 15000 for p in client.raw)


async def test_full_turn_with_tool_over_livekit(worker: Proc, connect: Connect, room: str) -> None:
    alice = await connect("alice", room)
    text = script(tool="calculate", args={"expression": "2**8"}, then="It is 256.")
    result = await alice.chat(text)
    types = [e.type for e in result.events]
    assert types[0] == "turn.start" and types[-1] == "turn.end"
    assert (
        types.index("turn.tool_call") < types.index("turn.tool_result") < types.index("turn.reply")
    )
    deltas = "".join(e.text for e in result.events if e.type == "turn.delta")  # type: ignore[union-attr]
    assert deltas == result.reply == "It is 256."
    assert result.end is not None and result.end.status == "completed"
    assert all(p.participant and p.participant.identity == alice.agent for p in alice.raw)
    assert_wire_invariants(alice)


async def test_explicit_dispatch_by_agent_name(
    lk: DevServer, llm_url: str, connect: Connect, room: str
) -> None:
    named = start_worker(lk, llm_url, agent_name="named-bot")
    try:
        client = await connect("carol", room, agent_name="named-bot", dispatch_name="named-bot")
        assert (await client.request("ping")).type == "pong"
        # and through the dispatch API, into a room nobody's token asked for it
        other = room + "-api"
        http = lk.url.replace("ws://", "http://")
        async with api.LiveKitAPI(http, lk.api_key, lk.api_secret) as lkapi:
            await lkapi.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name="named-bot", room=other)
            )
        dave = await connect("dave", other, agent_name="named-bot")
        result = await dave.chat("hello named bot")
        assert result.reply == "You said: hello named bot"
    finally:
        named.stop()


async def test_two_users_chat_at_once_privately(worker: Proc, connect: Connect, room: str) -> None:
    alice = await connect("alice", room)
    bob = await connect("bob", room)
    a, b = await asyncio.gather(
        alice.chat(script(say="for alice " * 30)), bob.chat(script(say="for bob " * 30))
    )
    assert a.reply and a.reply.startswith("for alice") and b.reply and b.reply.startswith("for bob")
    for client in (alice, bob):
        own = set(client.sent_ids)
        assert client.messages and all(m.reply_to in own for m in client.messages)  # type: ignore[union-attr]
        assert all(json.loads(p.data).get("reply_to") in own for p in client.raw)
        assert_wire_invariants(client)


async def test_forged_bot_packets_are_dropped(worker: Proc, connect: Connect, room: str) -> None:
    """Anyone in the room can publish on the bot's topic: clients take only the bot's."""
    alice = await connect("alice", room)
    mallory = await connect("mallory", room)
    answer = await alice.request("chat.message", text=script(say="real answer", delay=1.0))
    turn = answer.turn  # type: ignore[union-attr]
    forged = {"v": 1, "type": "turn.end", "id": "x", "seq": 99, "ts": 1, "reply_to": None}
    forged |= {"turn": turn, "status": "completed"}
    await mallory.room.local_participant.publish_data(
        json.dumps(forged), reliable=True, destination_identities=["alice"], topic="lkbot"
    )
    await alice.wait_for(lambda _: bool(alice.forged), 30)
    await alice.wait_for(lambda _: any(e.type == "turn.end" for e in alice.turn_events(turn)), 30)
    events = alice.turn_events(turn)
    assert [e.type for e in events].count("turn.end") == 1
    assert any(e.type == "turn.reply" and e.text == "real answer" for e in events)  # type: ignore[union-attr]
    assert json.loads(alice.forged[0].data)["seq"] == 99
    assert all(m.seq != 99 for m in alice.messages)


async def test_protocol_paths_on_the_wire(worker: Proc, connect: Connect, room: str) -> None:
    alice = await connect("alice", room)
    ready = await alice.request("session.hello", client={"name": "e2e"})
    assert ready.type == "session.ready"
    # duplicate id
    body = {"type": "chat.message", "id": "same-id", "text": "once"}
    await alice.send(body)
    await alice.send(body)
    await alice.wait_for(
        lambda ms: (
            sum(m.type == "turn.end" for m in ms) == 1
            and sum(getattr(m, "reply_to", None) == "same-id" and m.type == "ack" for m in ms) == 2
        )
    )
    assert sum(m.type == "turn.start" for m in alice.messages) == 1
    # malformed JSON, unknown type, other topics
    await alice.send_raw(b"{broken")
    await alice.send_raw(json.dumps({"v": 1, "type": "nope", "id": "u1"}))
    await alice.send_raw(json.dumps({"v": 1, "type": "ping", "id": "other"}), topic="elsewhere")
    pong = await alice.request("ping")
    errors = [m for m in alice.messages if isinstance(m, Error)]
    assert [(e.code, e.reply_to) for e in errors] == [
        ("invalid_json", None),
        ("unknown_type", "u1"),
    ]
    assert alice.answer_to("other") is None and pong.type == "pong"
    # cancel a stalled turn, then history get and reset
    turn_task = asyncio.create_task(alice.chat(script(stall=True)))
    await alice.wait_for(lambda ms: ms[-1].type == "turn.delta")
    cancel = await alice.request("chat.cancel")
    result = await turn_task
    assert cancel.status == "cancelled" and result.end and result.end.status == "cancelled"  # type: ignore[union-attr]
    page = await alice.request("history.get")
    assert isinstance(page, HistoryPage) and page.items[0].text == "once"
    assert (await alice.request("history.reset")).status == "reset"  # type: ignore[union-attr]
    assert (await alice.request("history.get")).items == []  # type: ignore[union-attr]
    assert_wire_invariants(alice)


async def test_long_reply_arrives_in_chunks(worker: Proc, connect: Connect, room: str) -> None:
    alice = await connect("alice", room)
    result = await alice.chat(script(long=60000, chunk=2000))
    assert result.reply is not None and len(result.reply) == 60000
    chunk_frames = [p for p in alice.raw if json.loads(p.data)["type"] == "chunk"]
    assert len(chunk_frames) >= 4
    assert_wire_invariants(alice)


async def test_big_client_message_is_sent_in_chunks(
    worker: Proc, connect: Connect, room: str
) -> None:
    alice = await connect("alice", room)
    text = '!{"say": "ok", "pad": "' + "中" * 7000 + '"}'  # 21 kB of UTF-8, 7,026 characters
    result = await alice.chat(text)
    assert result.reply == "ok"
    assert [e.type for e in result.events][-1] == "turn.end"


async def test_leaving_mid_turn_keeps_the_conversation(
    worker: Proc, connect: Connect, room: str
) -> None:
    """The running turn is cancelled; coming back, the sender finds its conversation
    (history, seq) and, resuming, the turn's end it was not there to receive."""
    alice = await connect("alice", room)
    await alice.chat("remember me")
    await alice.send({"type": "chat.message", "text": script(stall=True)})
    await alice.wait_for(lambda ms: ms[-1].type == "turn.delta")
    seen = alice.last_seq
    await alice.disconnect()
    again = await connect("alice", room)
    again.last_seq = seen
    await again.hello(resume=True)
    end = await again.wait_for(lambda ms: any(m.type == "turn.end" for m in ms))
    ends = [m for m in end if isinstance(m, TurnEnd)]
    assert [(e.status, e.reason) for e in ends] == [("cancelled", "participant_left")]
    assert ends[0].seq == seen + 1
    page = await again.request("history.get")
    assert isinstance(page, HistoryPage)
    assert [i.text for i in page.items] == [
        "remember me",
        "You said: remember me",
        script(stall=True),
    ]


async def test_worker_shutdown_ends_turns_cleanly(
    lk: DevServer, llm_url: str, connect: Connect, room: str
) -> None:
    proc = start_worker(lk, llm_url, agent_name="shutdown-bot")
    client = await connect("erin", room, agent_name="shutdown-bot", dispatch_name="shutdown-bot")
    turn = asyncio.create_task(client.chat(script(stall=True)))
    await client.wait_for(lambda ms: ms[-1].type == "turn.delta")
    code = await asyncio.to_thread(proc.stop)
    result = await turn
    end = result.end
    assert isinstance(end, TurnEnd) and (end.status, end.reason) == ("cancelled", "shutdown")
    log = proc.text()
    assert code == 0, log[-2000:]
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


def _chat_cli(lk: DevServer, room: str, text: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "LIVEKIT_"))}
    env.update(LIVEKIT_URL=lk.url, LIVEKIT_API_KEY=lk.api_key, LIVEKIT_API_SECRET=lk.api_secret)
    return subprocess.run(
        [sys.executable, "-m", "bot", "chat", "--room", room, "--identity", "cli", "--send", text],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=ROOT,
    )


async def test_terminal_chat_send_is_scriptable(worker: Proc, lk: DevServer, room: str) -> None:
    ok = await asyncio.to_thread(
        _chat_cli, lk, room, script(tool="echo", args={"text": "hi"}, then="echoed")
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "echoed"
    assert "[tool echo" in ok.stderr
    failed = await asyncio.to_thread(_chat_cli, lk, room + "-b", script(status=503))
    assert failed.returncode == 1
    assert "turn failed" in failed.stderr


async def test_terminal_chat_ctrl_c_cancels_the_reply(
    worker: Proc, lk: DevServer, room: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "LIVEKIT_"))}
    env.update(LIVEKIT_URL=lk.url, LIVEKIT_API_KEY=lk.api_key, LIVEKIT_API_SECRET=lk.api_secret)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "chat",
        "--room",
        room,
        "--identity",
        "tty",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdin and proc.stdout and proc.stderr

    async def read_until(stream: asyncio.StreamReader, needle: bytes) -> bytes:
        seen = b""
        while needle not in seen:
            chunk = await asyncio.wait_for(stream.read(256), 30)
            assert chunk, f"stream ended before {needle!r}: {seen!r}"
            seen += chunk
        return seen

    try:
        await read_until(proc.stderr, b"connected to")
        proc.stdin.write(script(stall=True).encode() + b"\n")
        await read_until(proc.stdout, b"Thinking")  # the stalled reply is streaming
        proc.send_signal(signal.SIGINT)  # Ctrl-C once: cancel, not quit
        err = await read_until(proc.stderr, b"[turn cancelled")
        assert b"cancelling" in err
        proc.stdin.write(b"/quit\n")
        await proc.stdin.drain()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
