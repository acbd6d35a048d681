"""The floor of a join: N bare `rtc.Room` connects at once, in a process of their own.

`python -m bench.floor N [--quiet]` (LIVEKIT_URL/_API_KEY/_API_SECRET from the
environment) prints one JSON object: p50/p99 of the connects and the process's CPU.
`floor()` runs it against a dev server; `bench.burst` compares its joins with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass

from bot.config import Settings
from bot.dev import livekit_server
from bot.room.tokens import mint_token

from .stack import ROOT, cpu_seconds, drain, nearest_rank

BOUND_S = 120.0  # the floor's process must be done by then


@dataclass
class Floor:
    """N bare `rtc.Room` connects at once, in a process of their own (no bot, nothing
    sent): what joining a room costs on this box before any of our code runs."""

    rooms: int
    quiet: bool  # native logs kept in Rust (as our worker runs), or livekit.rtc's defaults
    p50_s: float
    p99_s: float
    cpu_s: float


async def _floor_connects(url: str, key: str, secret: str, n: int, quiet: bool) -> dict[str, float]:
    from livekit import rtc

    from bot.room.options import data_only
    from bot.sdk import native_logs

    if quiet:
        native_logs.quiet()
    settings = Settings(livekit_url=url, livekit_api_key=key, livekit_api_secret=secret)
    tag = uuid.uuid4().hex[:6]
    rooms = [rtc.Room() for _ in range(n)]

    async def one(i: int, room: rtc.Room) -> float:
        started = time.monotonic()
        await room.connect(
            url, mint_token(settings, room=f"floor-{tag}-{i}", identity="u"), data_only()
        )
        return time.monotonic() - started

    cpu0 = cpu_seconds(os.getpid())
    times = await asyncio.gather(*(one(i, r) for i, r in enumerate(rooms)))
    cpu = cpu_seconds(os.getpid()) - cpu0
    await asyncio.gather(*(r.disconnect() for r in rooms))
    return {
        "p50_s": statistics.median(times),
        "p99_s": nearest_rank(times, 0.99) or 0.0,
        "cpu_s": cpu,
    }


async def floor(lk: livekit_server.DevServer, n: int, quiet: bool) -> Floor:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.floor",
        str(n),
        *(["--quiet"] if quiet else []),
        cwd=ROOT,
        env={
            **os.environ,
            "LIVEKIT_URL": lk.url,
            "LIVEKIT_API_KEY": lk.api_key,
            "LIVEKIT_API_SECRET": lk.api_secret,
        },
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), BOUND_S)
    await drain(lk)
    return Floor(rooms=n, quiet=quiet, **json.loads(out.decode().strip().splitlines()[-1]))


Floors = dict[tuple[int, bool], Floor]  # (rooms, quiet) -> floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rooms", type=int, help="connects at once")
    parser.add_argument("--quiet", action="store_true", help="native logs kept in Rust")
    args = parser.parse_args()
    env = os.environ
    result = asyncio.run(
        _floor_connects(
            env["LIVEKIT_URL"],
            env["LIVEKIT_API_KEY"],
            env["LIVEKIT_API_SECRET"],
            args.rooms,
            args.quiet,
        )
    )
    print(json.dumps(result), flush=True)
    os._exit(0)  # not the interpreter's teardown: livekit's FFI threads may still call in


if __name__ == "__main__":
    main()
