"""Rooms created at once: does every one get its bot, and how fast?

`python -m bench.burst [--sizes 10,20,50] [--repeat 5] [--publish]`

One loopback livekit-server, the scripted LLM, and our worker as users run it
(`python -m bot start`, automatic dispatch, default settings). For each burst, N
clients connect at the same moment, each to a room of its own (the connect creates the
room, and LiveKit dispatches at creation), then handshake. Join time is measured per
room from the start of the connect (room creation) to `session.ready`. A room whose bot
does not come within the bound counts as not joined. Between bursts, the rooms are
left and the worker is given time to release them. Rooms the dispatch watchdog had to
re-dispatch are counted from the worker's log. Then the same bursts of rooms created
by the server API, with no client (`bench/created.py`): the bot's join alone. Nothing
here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from bot import sdk
from bot.client.bot_client import BotClient
from bot.config import Settings
from bot.dev import livekit_server
from bot.dev.processes import stop_process
from bot.room.tokens import mint_token

from .answers import NAMES, Answers, answers_table, first_answers
from .created import Created, Webhooks, created_burst, created_table
from .floor import Floors, floor
from .report import fmt, machine, publish_section
from .stack import (
    ROOT,
    Stack,
    cpu_seconds,
    drain,
    nearest_rank,
    start_server_and_llm,
)

BOUND_S = 120.0  # a bot later than this counts as never
MARK_START, MARK_END = "<!-- burst:start -->", "<!-- burst:end -->"


@dataclass
class Burst:
    rooms: int
    connected: int  # clients that got into their room (the load generator's side)
    joined: int  # of those, rooms whose bot answered session.ready
    p50_s: float | None
    p99_s: float | None
    max_s: float | None
    by_watchdog: int
    cpu_worker_s: float  # CPU seconds over the burst: our worker
    cpu_server_s: float  # livekit-server
    cpu_clients_s: float  # the load generator (this process)


async def _one(
    lk: livekit_server.DevServer, room: str, out: list[BotClient]
) -> tuple[bool, float | None]:
    settings = Settings(
        livekit_url=lk.url, livekit_api_key=lk.api_key, livekit_api_secret=lk.api_secret
    )
    client = BotClient()
    out.append(client)
    started = time.monotonic()
    try:
        await client.join(lk.url, mint_token(settings, room=room, identity="user"))
    except Exception:
        return False, None  # the client never got in: not the bot's to answer
    try:
        await client.wait_bot(timeout=BOUND_S)
    except Exception:
        return True, None
    return True, time.monotonic() - started


def _redispatches(log: Path) -> int:
    return log.read_text(errors="replace").count("a room has people but no bot")


async def burst(lk: livekit_server.DevServer, n: int, log: Path, worker: int) -> Burst:
    before = _redispatches(log)
    pids = (worker, lk.process.pid, os.getpid())
    cpu0 = [cpu_seconds(p) for p in pids]
    tag = uuid.uuid4().hex[:6]
    clients: list[BotClient] = []
    outcomes = await asyncio.gather(*(_one(lk, f"burst-{tag}-{i}", clients) for i in range(n)))
    await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    ok = [t for _, t in outcomes if t is not None]
    cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
    after = _redispatches(log)
    await drain(lk)
    return Burst(
        rooms=n,
        connected=sum(1 for c, _ in outcomes if c),
        joined=len(ok),
        p50_s=statistics.median(ok) if ok else None,
        p99_s=nearest_rank(ok, 0.99),
        max_s=max(ok) if ok else None,
        by_watchdog=after - before,
        cpu_worker_s=cpu[0],
        cpu_server_s=cpu[1],
        cpu_clients_s=cpu[2],
    )


def table(results: list[Burst], floors: Floors) -> str:
    lines = [
        "| rooms at once | clients in | bot joined | join p50 (s) | join p99 (s) | max (s) "
        "| floor p50 / p99 (s): SDK defaults · native logs in Rust "
        "| p99 ÷ floor p99 | CPU s: worker / livekit-server / clients "
        "| re-dispatched by the watchdog |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in results:
        cells = []
        for quiet in (False, True):
            f = floors.get((b.rooms, quiet))
            cells.append(f"{f.p50_s:.2f} / {f.p99_s:.2f}" if f else "–")
        ratios = [
            f"{b.p99_s / f.p99_s:.1f}×"
            for quiet in (False, True)
            if (f := floors.get((b.rooms, quiet))) and b.p99_s is not None and f.p99_s
        ]
        lines.append(
            f"| {b.rooms} | {b.connected}/{b.rooms} | {b.joined}/{b.connected} "
            f"| {fmt(b.p50_s, 2)} | {fmt(b.p99_s, 2)} | {fmt(b.max_s, 2)} | {' · '.join(cells)} "
            f"| {' · '.join(ratios) or '–'} "
            f"| {b.cpu_worker_s:.1f} / {b.cpu_server_s:.1f} / {b.cpu_clients_s:.1f} "
            f"| {b.by_watchdog} |"
        )
    return "\n".join(lines)


@dataclass
class Run:
    bursts: list[Burst]
    floors: Floors
    answers: list[Answers]
    created: list[Created]


def section(run: Run, seconds: float) -> str:
    floor_cpu = ", ".join(
        f"{n} rooms {f.cpu_s:.1f} s" + (" (native logs in Rust)" if quiet else "")
        for (n, quiet), f in sorted(run.floors.items())
    )
    return (
        f"{MARK_START}\n## Join under bursts\n\n"
        f"`python -m bench.burst` on {machine()}, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{seconds:.0f} s. N clients connect at the same moment, each creating a room of "
        "its own (automatic dispatch at creation); join time = room created → "
        "`session.ready`, per room. One loopback livekit-server, our worker as users run "
        "it (`python -m bot start`, default settings, one process), the load generator "
        "(`BotClient`s) in one process on the same 2-core box: each room costs two WebRTC "
        "joins here (the client's and the bot's), both on this box's CPU.\n\n"
        "The *floor* is measured in the same run: N bare `rtc.Room` connects at once in a "
        "process of their own, with no bot and nothing sent; once as livekit.rtc sets "
        "itself up, once with its native logs kept in Rust as our worker and clients run "
        "(`bot/sdk/native_logs.py`) (their CPU: "
        f"{floor_cpu}).\n\n" + table(run.bursts, run.floors) + "\n\n"
        "### Rooms created by the API: the bot's join alone\n\n"
        "An app's backend creates the room (`CreateRoom`) before it hands out tokens; "
        "LiveKit dispatches the bot at creation. N rooms created at the same moment, "
        "nobody else joining: one participant per room, the same work as the floor's "
        "bare connects. Time = the room's `CreateRoom` call → its bot's participant is "
        "active, as livekit-server's `participant_joined` webhook reports it (sent when "
        "the participant's connection is up), taken when the webhook arrives.\n\n"
        + created_table(run.created, run.floors)
        + "\n\n"
        "### First answer in a new room, against AgentSession and the echo floor\n\n"
        "N users at once, each creating a room of its own and sending one message as soon "
        "as the bot is there; time = room created → the first text of the answer (ours: "
        "the first `turn.delta`; AgentSession: the first chunk of its `lk.transcription` "
        "stream; echo floor: the packet back from a bare participant that joins each room "
        "at the same moment, as a dispatched bot would, and that sends nothing but the "
        "echo). The scripted LLM answers at once. AgentSession is LiveKit Agents' text "
        "mode in its own worker (`bench/peer_agent.py`, dispatched by the token), each "
        "system alone on the box.\n\n" + answers_table(run.answers) + f"\n{MARK_END}\n"
    )


async def run(
    sizes: list[int], repeat: int, answer_sizes: list[int], hooks: Webhooks
) -> tuple[Run, Stack]:
    stack = start_server_and_llm(webhook=await hooks.start())
    lk = stack.lk
    # bench.load's users (the first answers) read the server from the environment
    os.environ.update(
        LIVEKIT_URL=lk.url, LIVEKIT_API_KEY=lk.api_key, LIVEKIT_API_SECRET=lk.api_secret
    )
    floors = {}
    for n in sizes:
        for quiet in (False, True):
            floors[n, quiet] = f = await floor(lk, n, quiet)
            print(
                f"  floor, {n} bare connects{' (native logs in Rust)' if quiet else ''}: "
                f"p50 {f.p50_s:.2f} s, p99 {f.p99_s:.2f} s, CPU {f.cpu_s:.1f} s",
                flush=True,
            )
    answers = []

    def show(a: Answers) -> None:
        print(
            f"  first answer, {NAMES[a.system]}, {a.rooms} rooms: {a.answered}/{a.rooms}, "
            f"p50 {fmt(a.p50_s, 2)} s, p99 {fmt(a.p99_s, 2)} s",
            flush=True,
        )
        answers.append(a)

    # the echo's rooms before our worker runs: its watchdog would bring bots to them
    for n in answer_sizes:
        show(await first_answers(stack, "echo", n, None))
    ours = stack.start_ours()
    log = stack.logdir / "ours.log"
    rounds = [n for n in sizes for _ in range(repeat if n == max(sizes) else 1)]
    results = []
    for n in rounds:
        b = await burst(lk, n, log, ours.pid)
        print(
            f"  {n} rooms: clients in {b.connected}/{n}, bot joined "
            f"{b.joined}/{b.connected}, p50 {fmt(b.p50_s, 2)} s, p99 {fmt(b.p99_s, 2)} s, "
            f"watchdog {b.by_watchdog}, CPU s worker {b.cpu_worker_s:.1f} server "
            f"{b.cpu_server_s:.1f} clients {b.cpu_clients_s:.1f}",
            flush=True,
        )
        results.append(b)
    created = []
    for n in rounds:
        c = await created_burst(lk, hooks, n, ours.pid)
        print(
            f"  {n} rooms created by the API: bot in {c.joined}/{n}, p50 "
            f"{fmt(c.p50_s, 2)} s, p99 {fmt(c.p99_s, 2)} s, CPU s worker "
            f"{c.cpu_worker_s:.1f} server {c.cpu_server_s:.1f}",
            flush=True,
        )
        created.append(c)
    for n in answer_sizes:
        show(await first_answers(stack, "ours", n, ours.pid))
    stop_process(ours, 30)
    await drain(lk)
    peer = stack.start_peer()
    for n in answer_sizes:
        show(await first_answers(stack, "peer", n, peer.pid))
    stop_process(peer, 30)
    order = {"echo": 0, "ours": 1, "peer": 2}
    answers.sort(key=lambda a: (a.rooms, order[a.system]))
    return Run(results, floors, answers, created), stack


async def _run_and_close(sizes: list[int], repeat: int, answer_sizes: list[int]) -> Run:
    print(f"bursts: {sizes} rooms (largest x{repeat}); first answers: {answer_sizes}", flush=True)
    from bot.sdk import native_logs

    native_logs.quiet()  # the load generator's own cost, whatever system it talks to
    hooks = Webhooks()
    result, stack = await run(sizes, repeat, answer_sizes, hooks)
    stack.close()
    await hooks.close()
    return result


def main() -> None:
    sdk.enable()  # the load generator: many clients, as cheap as the worker's rooms
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,20,50", help="rooms per burst, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="bursts of the largest size")
    parser.add_argument(
        "--answer-sizes", default="10,50", help="rooms per first-answer burst, per system"
    )
    parser.add_argument("--publish", action="store_true", help="write docs/performance.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.monotonic()
    # one event loop for everything: livekit's FFI client stays bound to the first one
    answer_sizes = [int(s) for s in args.answer_sizes.split(",") if s]
    outcome = asyncio.run(_run_and_close(sizes, args.repeat, answer_sizes))
    text = section(outcome, time.monotonic() - started)
    print(table(outcome.bursts, outcome.floors))
    print(created_table(outcome.created, outcome.floors))
    print(answers_table(outcome.answers))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "bursts": [asdict(b) for b in outcome.bursts],
        "floors": [asdict(f) for f in outcome.floors.values()],
        "answers": [asdict(a) for a in outcome.answers],
        "created": [asdict(c) for c in outcome.created],
    }
    (out / "burst.json").write_text(json.dumps(data, indent=2))
    if args.publish:
        publish_section(text, ROOT / "docs" / "performance.md", MARK_START, MARK_END)
        print("written to docs/performance.md")


if __name__ == "__main__":
    main()
