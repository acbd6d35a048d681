"""Tools a client runs itself, over a real livekit-server with the worker process:
BotClient declares a tool, the model calls it, the result shapes the reply; a result
lost on the way comes back when the call is replayed by a resume."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from bot.dev.livekit_server import DevServer
from bot.protocol.outbound import ToolCall, TurnToolResult
from bot.room.tokens import mint_token

from ..harness import script
from .conftest import Connect, settings_for
from .procs import Proc

ROOT = Path(__file__).resolve().parents[2]
BOUND = 60.0


async def test_a_client_tool_runs_in_the_client_and_shapes_the_reply(
    lk: DevServer, worker: Proc, connect: Connect, room: str
) -> None:
    ann = await connect("ann", room)
    seen: list[Any] = []

    def locate(args: Any) -> dict[str, Any]:
        seen.append(args)
        return {"city": "Lyon", "precise": args.get("precise")}

    ann.tool("get_location", locate, description="Where the user is")
    ready = await ann.hello()
    assert [t.source for t in ready.tools if t.name == "get_location"] == ["client"]
    result = await ann.chat(script(tool="get_location", args={"precise": True}), BOUND)
    assert seen == [{"precise": True}]
    assert result.reply == "Tool results: " + json.dumps({"city": "Lyon", "precise": True})
    assert result.end is not None and result.end.status == "completed"
    settled = [e for e in result.events if isinstance(e, TurnToolResult)]
    assert [s.status for s in settled] == ["ok"]


async def test_a_lost_result_goes_again_when_a_resume_replays_the_call(
    lk: DevServer, worker: Proc, connect: Connect, room: str
) -> None:
    """LiveKit drops what is published while a connection is re-established: here the
    first result is dropped on purpose. The client's resume gets the `tool.call` again
    (it is kept like every bot message) and the client sends the result it had."""
    bea = await connect("bea", room)
    runs: list[Any] = []
    bea.tool("get_time_zone", lambda args: runs.append(args) or "Europe/Paris")
    await bea.hello()
    sent = bea.send
    dropped: list[dict[str, Any]] = []

    async def lossy(body: dict[str, Any]) -> str:
        if body.get("type") == "tool.result" and not dropped:
            dropped.append(body)
            return "lost"
        return await sent(body)

    bea.send = lossy  # type: ignore[method-assign]
    msg_id = await bea.send({"type": "chat.message", "text": script(tool="get_time_zone")})
    await bea.wait_for(lambda ms: any(isinstance(m, ToolCall) for m in ms), BOUND)
    await bea.wait_for(lambda _: bool(dropped), BOUND)
    before_call = next(m for m in bea.messages if isinstance(m, ToolCall)).seq - 1
    bea.last_seq = before_call  # as if the call and what followed were lost
    await bea.hello(resume=True)
    end = await bea.wait_for(
        lambda ms: any(m.type == "turn.end" and getattr(m, "reply_to", None) == msg_id for m in ms),
        BOUND,
    )
    reply = next(m for m in end if m.type == "turn.reply" and m.reply_to == msg_id)  # type: ignore[union-attr]
    assert reply.text == 'Tool results: "Europe/Paris"'  # type: ignore[union-attr]
    assert len(runs) == 1  # the tool ran once; its result was sent twice


async def test_the_docs_python_client_tool_example_runs_as_written(
    lk: DevServer, worker: Proc, room: str
) -> None:
    docs = await asyncio.to_thread((ROOT / "docs" / "tools.md").read_text)
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", docs, flags=re.S) if "client.tool(" in b
    ]
    scope: dict[str, Any] = {}
    exec(block, scope)  # the docs' own code
    token = mint_token(settings_for(lk), room=room, identity="dora")
    reply = await scope["main"](lk.url, token, script(tool="get_location"))
    assert reply == "Tool results: " + json.dumps({"city": "Lyon", "country": "FR"})
