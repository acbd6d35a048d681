"""Idle rooms: what each room costs our worker while nobody types, next to the floor.

`python -m bench.idle [--rooms 50] [--seconds 20] [--publish]`

One loopback livekit-server and our worker (`python -m bot start`, defaults). The
worker's CPU per second and PSS are measured with no room, then with N rooms each
holding one connected client (handshake done, then silence); per room = the
difference / N. The floor: a process of its own holding N bare `rtc.Room` connections
(data-only, as our bot joins), measured the same way before and after connecting: what
one WebRTC connection per room costs before any of our code runs. The clients (the
load generator) run in this process; their CPU is reported too. Nothing asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass

import psutil

from bot.client.bot_client import BotClient
from bot.config import Settings
from bot.dev.processes import stop_process
from bot.room.tokens import mint_token

from .burst import _drain
from .report import machine, publish_section
from .stack import ROOT, start_server_and_llm

MARK_START, MARK_END = "<!-- idle:start -->", "<!-- idle:end -->"


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def _pss_mb(p: psutil.Process) -> float:
    return float(p.memory_full_info().pss) / 2**20


async def _sample(p: psutil.Process, seconds: float) -> tuple[float, float]:
    """CPU ms per second over `seconds`, and PSS MB at the end."""
    c0, t0 = _cpu(p), time.monotonic()
    await asyncio.sleep(seconds)
    return 1000 * (_cpu(p) - c0) / (time.monotonic() - t0), _pss_mb(p)


@dataclass
class Idle:
    what: str
    rooms: int
    cpu0_ms_s: float
    pss0_mb: float
    cpu_ms_s: float
    pss_mb: float
    generator_cpu_ms_s: float = 0.0

    @property
    def cpu_per_room(self) -> float:
        return (self.cpu_ms_s - self.cpu0_ms_s) / self.rooms

    @property
    def mb_per_room(self) -> float:
        return (self.pss_mb - self.pss0_mb) / self.rooms


async def _floor_process(n: int, seconds: float) -> dict[str, float]:
    from livekit import rtc

    from bot.room import ffi_routing
    from bot.room.options import data_only

    env = os.environ
    settings = Settings(
        livekit_url=env["LIVEKIT_URL"],
        livekit_api_key=env["LIVEKIT_API_KEY"],
        livekit_api_secret=env["LIVEKIT_API_SECRET"],
    )
    me = psutil.Process()
    ffi_routing.install()  # as our worker does
    rooms = [rtc.Room() for _ in range(n)]
    cpu0, pss0 = await _sample(me, seconds)
    tag = uuid.uuid4().hex[:6]
    for i, room in enumerate(rooms):  # one at a time: the join burst is another bench
        token = mint_token(settings, room=f"idle-floor-{tag}-{i}", identity="u")
        await room.connect(settings.livekit_url, token, data_only())
        ffi_routing.bind(room)
    await asyncio.sleep(5)
    cpu, pss = await _sample(me, seconds)
    return {"cpu0_ms_s": cpu0, "pss0_mb": pss0, "cpu_ms_s": cpu, "pss_mb": pss}


async def run(n: int, seconds: float) -> list[Idle]:
    stack = start_server_and_llm()
    lk = stack.lk
    results = []
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.idle", "--floor-of", str(n), "--seconds", str(seconds),
            cwd=ROOT,
            env=stack.env(),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        floor = json.loads(out.decode().strip().splitlines()[-1])
        await _drain(lk)  # else the worker's watchdog brings bots to the floor's rooms
        results.append(Idle("bare rtc.Room (floor)", n, **floor))
        print(f"  floor: {results[-1]}", flush=True)

        ours = stack.start_ours(BOT_STORE="memory")
        worker = psutil.Process(ours.pid)
        await asyncio.sleep(3)
        cpu0, pss0 = await _sample(worker, seconds)
        settings = Settings(
            livekit_url=lk.url, livekit_api_key=lk.api_key, livekit_api_secret=lk.api_secret
        )
        tag = uuid.uuid4().hex[:6]
        clients = []
        for i in range(n):  # one at a time: the join burst is another bench
            c = BotClient()
            await c.connect(lk.url, mint_token(settings, room=f"idle-{tag}-{i}", identity="u"))
            clients.append(c)
        await asyncio.sleep(5)
        me = psutil.Process()
        g0 = _cpu(me)
        t0 = time.monotonic()
        cpu, pss = await _sample(worker, seconds)
        generator = 1000 * (_cpu(me) - g0) / (time.monotonic() - t0)
        results.append(Idle("lkbot worker", n, cpu0, pss0, cpu, pss, generator))
        print(f"  ours: {results[-1]}", flush=True)
        await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
        stop_process(ours, 30)
    finally:
        stack.close()
    return results


def table(results: list[Idle]) -> str:
    rows = [
        "| process | idle rooms | CPU ms/s: none → N | per room | PSS MB: none → N | per room "
        "| load generator CPU ms/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.what} | {r.rooms} | {r.cpu0_ms_s:.1f} → {r.cpu_ms_s:.1f} | "
            f"{r.cpu_per_room:.2f} | {r.pss0_mb:.0f} → {r.pss_mb:.0f} | {r.mb_per_room:.2f} | "
            f"{r.generator_cpu_ms_s:.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="each measurement")
    parser.add_argument("--publish", action="store_true", help="write docs/performance.md")
    parser.add_argument("--floor-of", type=int, help=argparse.SUPPRESS)  # the floor's process
    args = parser.parse_args()
    if args.floor_of:
        print(json.dumps(asyncio.run(_floor_process(args.floor_of, args.seconds))), flush=True)
        os._exit(0)  # not the interpreter's teardown: livekit's FFI threads may still call in
    print(f"idle rooms: {args.rooms}, {args.seconds:.0f} s per measurement", flush=True)
    results = asyncio.run(run(args.rooms, args.seconds))
    print(table(results))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "idle.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    if args.publish:
        text = (
            f"{MARK_START}\n## Idle rooms (`python -m bench.idle`)\n\n"
            f"Machine: {machine()}. Rooms joined one at a time, then {args.seconds:.0f} s of "
            "silence measured; per room = (with N rooms − with none) / N. The floor is a "
            "process holding the same number of bare data-only `rtc.Room` connections.\n\n"
            f"{table(results)}\n{MARK_END}\n"
        )
        publish_section(text, ROOT / "docs" / "performance.md", MARK_START, MARK_END)


if __name__ == "__main__":
    main()
