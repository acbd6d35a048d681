"""What a flood from one participant costs everyone else in the room (issue 24).

One livekit-server, the scripted LLM (instant, 10-token replies), our worker, LiveKit
Agents' AgentSession worker and the echo participant, all in this run. Four users share
a room with our bot and take turns one after another; their time to first text
(`chat.message` sent → first `turn.delta`) is measured twice: alone (the baseline),
and while a fifth participant of the same room, in a process of its own, sends
`chat.message`s to the bot as fast as it can (every one past the rate limit is
answered `rate_limited`). The worker's CPU is measured over each phase. The echo floor
and an AgentSession turn are measured in the same run, for scale.

    python -m bench.flood [--turns 100] [--publish]
    FLOOD_PROFILE=/tmp/flood.raw python -m bench.flood   # and py-spy's stacks of the flood
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import psutil

from bot import sdk
from bot.client.bot_client import BotClient

from .load import EchoUser, OursUser, PeerUser, token_for
from .report import fmt, machine, md_table, publish_section, turns_bench_main
from .run import py_spy
from .stack import OURS_AGENT, PEER_AGENT, ROOT, Stack, nearest_rank, start_stack

PERFORMANCE = ROOT / "docs" / "performance.md"
MARK = ("<!-- flood:start -->", "<!-- flood:end -->")
INSTANT = '!{"tokens": 10}'
USERS = 4
PACE_S = 0.3  # between a user's turns (BOT_RATE_PER_SECOND is 5 by default)


def stats(samples: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in samples]
    return {"n": len(ms), "p50_ms": nearest_rank(ms, 0.5), "p99_ms": nearest_rank(ms, 0.99)}


async def flooder(room: str, seconds: float, agent: str = OURS_AGENT) -> None:
    """The flooding participant: chat.messages to the bot, back to back, no waiting for
    answers; prints how many it sent per second."""
    sdk.enable()
    client = BotClient(agent_name=agent)
    await client.connect(os.environ["LIVEKIT_URL"], token_for(room, "flooder", agent))
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    sent = 0
    started = time.perf_counter()
    while not stop.is_set() and time.perf_counter() - started < seconds:
        await client.send({"type": "chat.message", "text": "spam"})
        sent += 1
    took = time.perf_counter() - started
    refused = sum(1 for m in client.messages if getattr(m, "code", None) == "rate_limited")
    print(json.dumps({"sent_per_s": sent / took, "sent": sent, "rate_limited": refused}))
    await client.disconnect()


async def users_turns(room: str, turns: int, agent: str = OURS_AGENT) -> list[float]:
    users = [OursUser() for _ in range(USERS)]
    await asyncio.gather(*(u.connect(room, f"u{i}", agent) for i, u in enumerate(users)))
    firsts: list[float] = []

    async def run(user: OursUser) -> None:
        for i in range(turns + 3):
            started = time.perf_counter()
            marks = await user.turn(INSTANT)
            if i >= 3 and marks.get("ok") and "first" in marks:
                firsts.append(marks["first"] - started)
            await asyncio.sleep(PACE_S)  # under the rate limit: the flooder alone is over it

    try:
        await asyncio.gather(*(run(u) for u in users))
    finally:
        await asyncio.gather(*(u.close() for u in users))
    return firsts


async def single(user: EchoUser | PeerUser, room: str, agent: str, turns: int) -> dict[str, Any]:
    await user.connect(room, "solo", agent)
    samples = []
    for i in range(turns + 5):
        started = time.perf_counter()
        marks = await user.turn(INSTANT if agent else "ping")
        if i >= 5:
            samples.append(marks.get("first", marks["end"]) - started)
    await user.close()
    return stats(samples)


def worker_cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def start_flooder(stack: Stack, room: str, agent: str = OURS_AGENT) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "bench.flood", "--flooder", room),
            *("--seconds", "600", "--agent", agent),
        ],
        env=stack.env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def start_profiler(pid: int) -> subprocess.Popen[bytes] | None:
    """FLOOD_PROFILE=path: py-spy's collapsed stacks of our worker during the flood."""
    path = os.environ.get("FLOOD_PROFILE")
    if not path:
        return None
    return subprocess.Popen(
        [py_spy(), "record", "-p", str(pid), "-d", "15", "-r", "200", "-f", "raw", "-o", path],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def phases(stack: Stack, echo_room: str, turns: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "floor": await single(EchoUser(), echo_room, "", turns),
        "peer": await single(PeerUser(), f"p-{uuid.uuid4().hex[:6]}", PEER_AGENT, turns),
    }
    ours = stack.workers["ours"].pid
    result.update(await flood_phases(stack, ours, OURS_AGENT, turns, echo_room))
    return result


async def paced_echo(room: str, stop: asyncio.Event) -> list[float]:
    """Round trips to the echo participant in `room`, PACE_S apart, until `stop`: what
    the box's transport does meanwhile, without our bot."""
    user = EchoUser()
    await user.connect(room, f"floor-{uuid.uuid4().hex[:6]}", "")
    samples = []
    while not stop.is_set():
        started = time.perf_counter()
        await user.turn("ping")
        samples.append(time.perf_counter() - started)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PACE_S)
    await user.close()
    return samples


async def flood_phases(
    stack: Stack, pid: int, agent: str, turns: int, echo_room: str | None = None
) -> dict[str, Any]:
    """The users' turns alone, then while the flooder floods: first text and the
    worker's CPU (`pid`) in each phase; with `echo_room` (an echo participant is in
    it), the echo round trip measured alongside, in each phase."""
    result: dict[str, Any] = {}
    for phase in ("alone", "flood"):
        room = f"flood-{uuid.uuid4().hex[:6]}"
        flood: subprocess.Popen[str] | None = None
        if phase == "flood":
            flood = start_flooder(stack, room, agent)
            assert flood.stdout is not None
            line = await asyncio.to_thread(flood.stdout.readline)
            if line.strip() != "ready":
                raise RuntimeError("the flooder did not start")
        spy = start_profiler(pid) if phase == "flood" else None
        stop = asyncio.Event()
        floor = asyncio.create_task(paced_echo(echo_room, stop)) if echo_room else None
        try:
            cpu0, t0 = worker_cpu(pid), time.perf_counter()
            firsts = await users_turns(room, turns, agent)
            cpu, took = worker_cpu(pid) - cpu0, time.perf_counter() - t0
        finally:
            stop.set()
            if flood is not None:
                flood.send_signal(signal.SIGINT)  # it stops sending and says how many
                out, _ = await asyncio.to_thread(flood.communicate, timeout=60)
                result["flooder"] = json.loads(out.strip().splitlines()[-1])
        result[phase] = {**stats(firsts), "worker_cpu_pct": 100 * cpu / took}
        if floor is not None:
            result[phase]["floor"] = stats(await floor)
        if spy is not None:
            await asyncio.to_thread(spy.wait)
    return result


def measure(turns: int) -> dict[str, Any]:
    stack = start_stack()
    echo_room = f"echo-{uuid.uuid4().hex[:6]}"
    echo = stack.start_echo([echo_room])
    os.environ.update(stack.env())
    try:
        return asyncio.run(phases(stack, echo_room, turns))
    finally:
        echo.terminate()
        stack.close()


def publish(result: dict[str, Any]) -> None:
    alone, flood = result["alone"], result["flood"]
    ratio = (
        flood["p99_ms"] / alone["p99_ms"] if alone["p99_ms"] and flood["p99_ms"] else float("nan")
    )
    rows = [
        ["echo floor: a packet there and back", result["floor"], None],
        ["AgentSession text mode, one user: first text", result["peer"], None],
        [f"ours, {USERS} users in one room: first text", alone, alone["worker_cpu_pct"]],
        [
            f"ours, the same {USERS} users while a fifth floods the bot",
            flood,
            flood["worker_cpu_pct"],
        ],
    ]
    text = "\n".join(
        [
            MARK[0],
            "### A flood from one participant",
            "",
            f"`python -m bench.flood`, {machine()}. {USERS} users in one room take instant "
            f"10-token turns one after another, {PACE_S:g} s apart; then again while a "
            "fifth participant of the room sends `chat.message`s to the bot back to back "
            "from a process of its own (all past the rate limit answered `rate_limited`). "
            "Same run for every row.",
            "",
            md_table(
                ["what", "samples", "p50 ms", "p99 ms", "worker CPU %"],
                [[w, str(s["n"]), fmt(s["p50_ms"]), fmt(s["p99_ms"]), fmt(c)] for w, s, c in rows],
            ),
            "",
            f"Under the flood the others' first-text p99 is {ratio:.1f}× the baseline's "
            "(the goal of issue 24: within 2×).",
            MARK[1],
        ]
    )
    publish_section(text, PERFORMANCE, *MARK)


def main(argv: list[str] | None = None) -> int:
    flooding = argparse.ArgumentParser(add_help=False)  # the flooder's own process
    flooding.add_argument("--flooder", metavar="ROOM")
    flooding.add_argument("--seconds", type=float, default=600)
    flooding.add_argument("--agent", default=OURS_AGENT)
    known, _ = flooding.parse_known_args(argv)
    if known.flooder:
        asyncio.run(flooder(known.flooder, known.seconds, known.agent))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__)
    parser.add_argument("--flooder", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--agent", help=argparse.SUPPRESS)
    return turns_bench_main(
        argv,
        prog="python -m bench.flood",
        doc=__doc__,
        turns=100,
        measure=measure,
        publish=publish,
        parser=parser,
    )


if __name__ == "__main__":
    raise SystemExit(main())
