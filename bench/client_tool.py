"""What a tool the client runs costs a turn: its round trip through LiveKit and the bot.

One livekit-server, the scripted LLM (zero think time), our worker, LiveKit Agents'
AgentSession worker and the echo participant, all measured in this run, one user
each, turns one after another:

- `echo`: a packet to the echo participant and back (the transport floor);
- `ours, no tool`: a turn, `chat.message` sent → `turn.end` received;
- `ours, client tool`: a turn whose model calls a tool of the client's
  (`tool.call` → the client's handler → `tool.result` → the model again);
  and within it the tool's leg, `tool.call` received → `turn.tool_result` received
  (the client's result to the bot and the bot's settlement back: one round trip);
- `AgentSession, no tool`: a turn of LiveKit Agents' text mode, for scale.

    python -m bench.client_tool [--turns 200] [--publish]
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from bot.client.bot_client import BotClient
from bot.protocol.outbound import BotMessage, ToolCall, TurnEnd, TurnToolResult

from .load import EchoUser, PeerUser, token_for
from .report import fmt, machine, md_table, publish_section, turns_bench_main
from .stack import OURS_AGENT, PEER_AGENT, ROOT, nearest_rank, start_stack

PERFORMANCE = ROOT / "docs" / "performance.md"
MARK = ("<!-- client-tool:start -->", "<!-- client-tool:end -->")
PLAIN = '!{"say": "ok"}'
WITH_TOOL = '!{"tool": "app_state", "then": "ok"}'


def stats(samples: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in samples]
    return {"n": len(ms), "p50_ms": nearest_rank(ms, 0.5), "p99_ms": nearest_rank(ms, 0.99)}


async def ours(turns: int) -> dict[str, dict[str, Any]]:
    client = BotClient(agent_name=OURS_AGENT)
    client.tool("app_state", lambda _args: {"cart": 3, "page": "/checkout"})
    marks: dict[str, float] = {}
    current = {"id": ""}

    def on_message(m: BotMessage) -> None:
        if getattr(m, "reply_to", None) != current["id"]:
            return
        now = time.perf_counter()
        if isinstance(m, ToolCall):
            marks["call"] = now
        elif isinstance(m, TurnToolResult):
            marks["settled"] = now
        elif isinstance(m, TurnEnd):
            marks["end"] = now
            marks["ok"] = float(m.status == "completed")

    client.on_message = on_message
    room = f"tool-{uuid.uuid4().hex[:6]}"
    await client.connect(os.environ["LIVEKIT_URL"], token_for(room, "u", OURS_AGENT))
    out: dict[str, list[float]] = {"plain": [], "tool": [], "leg": []}
    try:
        for i in range(turns * 2 + 10):
            text = WITH_TOOL if i % 2 else PLAIN
            marks.clear()
            started = time.perf_counter()
            current["id"] = await client.send({"type": "chat.message", "text": text})
            await client.wait_for(lambda _: "end" in marks, 120)
            if i < 10 or not marks.get("ok"):
                continue  # warm-up, or a turn that did not complete (not a sample)
            if text == PLAIN:
                out["plain"].append(marks["end"] - started)
            else:
                out["tool"].append(marks["end"] - started)
                out["leg"].append(marks["settled"] - marks["call"])
    finally:
        await client.disconnect()
    return {k: stats(v) for k, v in out.items()}


async def floor(turns: int, room: str) -> dict[str, Any]:
    user = EchoUser()
    await user.connect(room, "u", "")
    samples = []
    for i in range(turns + 10):
        started = time.perf_counter()
        marks = await user.turn("ping")
        if i >= 10:
            samples.append(marks["end"] - started)
    await user.close()
    return stats(samples)


async def peer(turns: int) -> dict[str, Any]:
    user = PeerUser()
    await user.connect(f"peer-{uuid.uuid4().hex[:6]}", "u", PEER_AGENT)
    samples = []
    for i in range(turns + 5):
        started = time.perf_counter()
        marks = await user.turn(PLAIN)
        if i >= 5:
            samples.append(marks["end"] - started)
    await user.close()
    return stats(samples)


def measure(turns: int) -> dict[str, Any]:
    # one user sends turns back to back, two messages each with a tool: the default
    # 5/s rate limit would refuse some (a refused tool.result is sent again after the
    # wait), which is not the latency measured here
    stack = start_stack(BOT_RATE_PER_SECOND="1000", BOT_RATE_BURST="1000")
    echo_room = f"echo-{uuid.uuid4().hex[:6]}"
    echo = stack.start_echo([echo_room])
    os.environ.update(stack.env())
    try:

        async def all_of() -> dict[str, Any]:
            return {
                "floor": await floor(turns, echo_room),
                "ours": await ours(turns),
                "peer": await peer(turns),
            }

        return asyncio.run(all_of())
    finally:
        echo.terminate()
        stack.close()


def publish(result: dict[str, Any]) -> None:
    o = result["ours"]
    rows = [
        ["echo floor: a packet there and back", result["floor"]],
        ["ours, a turn without a tool", o["plain"]],
        ["ours, a turn calling a client tool", o["tool"]],
        ["ours, the client tool's leg (`tool.call` → `turn.tool_result`)", o["leg"]],
        ["AgentSession text mode, a turn without a tool", result["peer"]],
    ]
    text = "\n".join(
        [
            MARK[0],
            "### Client tools: a round trip through the client",
            "",
            f"`python -m bench.client_tool`, {machine()}. One user per system, turns one "
            "after another, zero think time (scripted LLM), all in the same run. The "
            "tool's leg is the client's `tool.result` to the bot and the bot's "
            "`turn.tool_result` back: one round trip through livekit-server, as the floor.",
            "",
            md_table(
                ["what", "samples", "p50 ms", "p99 ms"],
                [[w, str(s["n"]), fmt(s["p50_ms"]), fmt(s["p99_ms"])] for w, s in rows],
            ),
            MARK[1],
        ]
    )
    publish_section(text, PERFORMANCE, *MARK)


def main(argv: list[str] | None = None) -> int:
    return turns_bench_main(
        argv,
        prog="python -m bench.client_tool",
        doc=__doc__,
        turns=200,
        measure=measure,
        publish=publish,
    )


if __name__ == "__main__":
    raise SystemExit(main())
