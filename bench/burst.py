"""Rooms created at once: does every one get its bot, and how fast?

`python -m bench.burst [--sizes 10,20,50] [--repeat 5] [--publish]`

One loopback livekit-server, the scripted LLM, and our worker as users run it
(`python -m bot start`, automatic dispatch, default settings). For each burst, N
clients connect at the same moment, each to a room of its own (the connect creates the
room, and LiveKit dispatches at creation), then handshake. Join time is measured per
room from the start of the connect (room creation) to `session.ready`. A room whose bot
does not come within the bound counts as not joined. Between bursts, the rooms are
left and the worker is given time to release them. Rooms the dispatch watchdog had to
re-dispatch are counted from the worker's log. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from livekit import api

from bot.client.bot_client import BotClient
from bot.config import Settings
from bot.dev import livekit_server
from bot.dev.processes import stop_process, wait_until
from bot.room.tokens import mint_token

from .report import machine, publish_section
from .stack import ROOT, Stack, start_server_and_llm

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
    executor: str


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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


async def _drain(lk: livekit_server.DevServer, timeout: float = 120) -> None:
    """Wait (bounded) until the server has closed every room (the bots have left)."""
    http = lk.url.replace("ws://", "http://")
    deadline = time.monotonic() + timeout
    async with api.LiveKitAPI(http, lk.api_key, lk.api_secret) as lkapi:
        while time.monotonic() < deadline:
            if not (await lkapi.room.list_rooms(api.ListRoomsRequest())).rooms:
                return
            await asyncio.sleep(1)


def _redispatches(log: Path) -> int:
    return log.read_text(errors="replace").count("a room has people but no bot")


async def burst(lk: livekit_server.DevServer, n: int, log: Path, executor: str) -> Burst:
    before = _redispatches(log)
    tag = uuid.uuid4().hex[:6]
    clients: list[BotClient] = []
    outcomes = await asyncio.gather(*(_one(lk, f"burst-{tag}-{i}", clients) for i in range(n)))
    await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    ok = [t for _, t in outcomes if t is not None]
    after = _redispatches(log)
    await _drain(lk)
    return Burst(
        rooms=n,
        connected=sum(1 for c, _ in outcomes if c),
        joined=len(ok),
        p50_s=statistics.median(ok) if ok else None,
        p99_s=_pct(ok, 0.99),
        max_s=max(ok) if ok else None,
        by_watchdog=after - before,
        executor=executor,
    )


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def table(results: list[Burst]) -> str:
    lines = [
        "| rooms at once | executor | clients in | bot joined | join p50 (s) | join p99 (s) "
        "| max (s) | re-dispatched by the watchdog |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in results:
        lines.append(
            f"| {b.rooms} | {b.executor} | {b.connected}/{b.rooms} | {b.joined}/{b.connected} "
            f"| {_f(b.p50_s)} | {_f(b.p99_s)} | {_f(b.max_s)} | {b.by_watchdog} |"
        )
    return "\n".join(lines)


def section(results: list[Burst], seconds: float) -> str:
    return (
        f"{MARK_START}\n## Join under bursts\n\n"
        f"`python -m bench.burst` on {machine()}, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{seconds:.0f} s. N clients connect at the same moment, each creating a room of "
        "its own (automatic dispatch at creation); join time = room created → "
        "`session.ready`, per room. One loopback livekit-server, our worker as users run "
        "it (`python -m bot start`, default settings), the load generator in one "
        "process on the same 2-core box.\n\n" + table(results) + f"\n{MARK_END}\n"
    )


async def run(sizes: list[int], repeat: int, executor: str) -> tuple[list[Burst], Stack]:
    stack = start_server_and_llm()
    lk = stack.lk
    ready = stack.logdir / "ours.ready"
    ours = stack.spawn(
        ["-m", "bot", "start", "--ready-file", str(ready)],
        "ours",
        OPENAI_BASE_URL=stack.llm_url,
        BOT_MODEL="scripted",
        BOT_HTTP_PORT="0",
        BOT_JOB_EXECUTOR=executor,
    )
    log = stack.logdir / "ours.log"
    wait_until(ready.exists, ours, log, what="our worker", timeout=120)
    results = []
    for n in sizes:
        for _ in range(repeat if n == max(sizes) else 1):
            b = await burst(lk, n, log, executor)
            print(
                f"  {n} rooms ({executor}): clients in {b.connected}/{n}, bot joined "
                f"{b.joined}/{b.connected}, p50 {_f(b.p50_s)} s, p99 {_f(b.p99_s)} s, "
                f"watchdog {b.by_watchdog}",
                flush=True,
            )
            results.append(b)
    stop_process(ours, 30)
    return results, stack


async def run_all(sizes: list[int], repeat: int, executors: list[str]) -> list[Burst]:
    everything: list[Burst] = []
    for executor in executors:
        print(f"bursts with the {executor} executor: {sizes} (largest x{repeat})", flush=True)
        results, stack = await run(sizes, repeat, executor)
        stack.close()
        everything += results
    return everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,20,50", help="rooms per burst, comma-separated")
    parser.add_argument("--repeat", type=int, default=5, help="bursts of the largest size")
    parser.add_argument("--executors", default="thread,process", help="job executors to run")
    parser.add_argument("--publish", action="store_true", help="write docs/performance.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.monotonic()
    # one event loop for everything: livekit's FFI client stays bound to the first one
    everything = asyncio.run(run_all(sizes, args.repeat, args.executors.split(",")))
    text = section(everything, time.monotonic() - started)
    print(table(everything))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "burst.json").write_text(json.dumps([asdict(b) for b in everything], indent=2))
    if args.publish:
        publish_section(text, ROOT / "docs" / "performance.md", MARK_START, MARK_END)
        print("written to docs/performance.md")


if __name__ == "__main__":
    main()
