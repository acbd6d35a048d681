"""Idle rooms: what each room costs our worker while nobody types, next to the floor.

`python -m bench.idle [--rooms 10,50,200] [--users 1000] [--seconds 20] [--publish]`

One loopback livekit-server and our worker (`python -m bot start`, defaults). CPU per
second and PSS are measured with no room, then with N rooms each holding connected
clients (handshake done, then silence); per room = the difference / N. CPU is also
split by thread (`/proc/<pid>/task`; the Rust runtime and libwebrtc name theirs).

The floor: a process of its own holding N bare data-only `rtc.Room` connections (as our
bot joins), measured the same way: what one WebRTC connection per room costs before any
of our code runs, once as livekit.rtc sets itself up and once with its native logs kept
out of Python (`bot/sdk/native_logs.py`, what our worker does). The floor is measured
at each N, for the rooms-per-process curve.

The clients (the load generator) run in processes of their own, a few rooms each, so
that no one process is their bottleneck; their CPU is reported. `--users` holds that
many conversations in as few rooms as `--users-per-room` allows. Nothing asserts.
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

from bot import sdk
from bot.config import Settings
from bot.dev.processes import stop_process
from bot.room.tokens import mint_token

from .report import machine, md_table, publish_section
from .stack import ROOT, Stack, cpu_seconds, drain, start_server_and_llm

MARK_START, MARK_END = "<!-- idle:start -->", "<!-- idle:end -->"
ROOMS_PER_GENERATOR = 100  # clients (connections) per load-generator process
SETTLE_S = 5.0  # after the last join, before measuring


def _pss_mb(p: psutil.Process) -> float:
    return float(p.memory_full_info().pss) / 2**20


def threads(pid: int) -> dict[str, float]:
    """CPU seconds so far per thread name (threads of one name summed)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


@dataclass
class Sample:
    cpu_ms_s: float
    pss_mb: float
    threads_ms_s: dict[str, float]


async def sample(pids: list[int], seconds: float) -> Sample:
    """CPU ms per second of these processes over `seconds` (by thread name for the
    first), and their PSS at the end."""
    procs = [psutil.Process(p) for p in pids]
    c0, th0, t0 = sum(cpu_seconds(p) for p in pids), threads(pids[0]), time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    th1 = threads(pids[0])
    by_thread = {k: 1000 * (v - th0.get(k, 0.0)) / elapsed for k, v in th1.items()}
    return Sample(
        1000 * (sum(cpu_seconds(p) for p in pids) - c0) / elapsed,
        sum(_pss_mb(p) for p in procs),
        {k: v for k, v in by_thread.items() if v > 0},
    )


@dataclass
class Idle:
    what: str
    rooms: int
    users: int  # conversations (clients) held
    before: Sample
    after: Sample
    generator_cpu_ms_s: float = 0.0
    generators: int = 0

    @property
    def cpu_per_room(self) -> float:
        return (self.after.cpu_ms_s - self.before.cpu_ms_s) / self.rooms

    @property
    def mb_per_room(self) -> float:
        return (self.after.pss_mb - self.before.pss_mb) / self.rooms

    def per_room_by_thread(self) -> dict[str, float]:
        names = set(self.before.threads_ms_s) | set(self.after.threads_ms_s)
        diff = {
            n: (self.after.threads_ms_s.get(n, 0.0) - self.before.threads_ms_s.get(n, 0.0))
            / self.rooms
            for n in names
        }
        return dict(sorted(diff.items(), key=lambda kv: -kv[1]))


# -- the holder processes: the floor's bare rooms and the load generator's clients --


async def _hold(kind: str, seats: list[tuple[str, str]]) -> None:
    """Print "up", wait for "go" on stdin, join each (room, identity) one at a time,
    print "ready", and hold until stdin closes."""
    from livekit import rtc

    from bot.client.bot_client import BotClient
    from bot.room.options import data_only
    from bot.sdk import ffi_routing, native_logs

    env = os.environ
    settings = Settings(
        livekit_url=env["LIVEKIT_URL"],
        livekit_api_key=env["LIVEKIT_API_KEY"],
        livekit_api_secret=env["LIVEKIT_API_SECRET"],
    )
    if kind == "quiet":
        native_logs.quiet()
    ffi_routing.install()  # as our worker does
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("up", flush=True)
    await stdin.readline()
    held: list[rtc.Room | BotClient] = []
    for room_name, identity in seats:  # one at a time: the join burst is another bench
        token = mint_token(settings, room=room_name, identity=identity)
        if kind == "client":
            client = BotClient()
            await client.connect(settings.livekit_url, token, agent_timeout=120)
            held.append(client)
        else:
            room = rtc.Room()
            await room.connect(settings.livekit_url, token, data_only())
            ffi_routing.bind(room)
            held.append(room)
    print("ready", flush=True)
    await stdin.read()  # EOF: leave


class Holder:
    def __init__(self, stack: Stack, kind: str, seats: list[tuple[str, str]]) -> None:
        self.kind = kind
        self._spec = json.dumps(seats)
        self._stack = stack
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> int:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.idle", "--hold", self.kind, "--seats", self._spec,
            cwd=ROOT,
            env=self._stack.env(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await self._expect(b"up")
        return self.proc.pid

    async def _expect(self, word: bytes) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 600)
        if line.strip() != word:
            raise RuntimeError(f"holder {self.kind}: expected {word!r}, got {line!r}")

    async def go(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self._expect(b"ready")

    async def close(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def _seats(tag: str, rooms: int, users: int) -> list[tuple[str, str]]:
    """`users` identities spread over `rooms` rooms (round robin)."""
    return [(f"idle-{tag}-{i % rooms}", f"u{i}") for i in range(users)]


async def floor(stack: Stack, n: int, seconds: float, kind: str) -> Idle:
    holder = Holder(stack, kind, _seats(uuid.uuid4().hex[:6], n, n))
    pid = await holder.start()
    before = await sample([pid], seconds)
    await holder.go()
    await asyncio.sleep(SETTLE_S)
    after = await sample([pid], seconds)
    await holder.close()
    await drain(stack.lk)  # else the worker's watchdog brings bots to the floor's rooms
    what = (
        "bare rtc.Room, livekit.rtc defaults"
        if kind == "sdk"
        else "bare rtc.Room, native logs kept in Rust"
    )
    return Idle(what, n, n, before, after)


async def ours(stack: Stack, worker: int, rooms: int, users: int, seconds: float) -> Idle:
    before = await sample([worker], seconds)
    seats = _seats(uuid.uuid4().hex[:6], rooms, users)
    chunks = [seats[i : i + ROOMS_PER_GENERATOR] for i in range(0, len(seats), ROOMS_PER_GENERATOR)]
    holders = [Holder(stack, "client", chunk) for chunk in chunks]
    pids = [await h.start() for h in holders]
    for h in holders:  # one generator after the other: joins stay one at a time
        await h.go()
    await asyncio.sleep(SETTLE_S)
    gen = asyncio.create_task(sample(pids, seconds))
    after = await sample([worker], seconds)
    generator = await gen
    for h in holders:
        await h.close()
    await drain(stack.lk)
    return Idle("lkbot worker", rooms, users, before, after, generator.cpu_ms_s, len(holders))


async def run(sizes: list[int], users: int, per_room: int, seconds: float) -> list[Idle]:
    stack = start_server_and_llm()
    results = []

    def show(r: Idle) -> None:
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(r.per_room_by_thread().items())[:4])
        print(
            f"  {r.what}, {r.rooms} rooms / {r.users} users: {r.cpu_per_room:.2f} ms/s and "
            f"{r.mb_per_room:.2f} MB per room ({top}); generators {r.generator_cpu_ms_s:.0f} "
            "ms/s",
            flush=True,
        )
        results.append(r)

    try:
        show(await floor(stack, max(sizes), seconds, "sdk"))
        for n in sizes:
            show(await floor(stack, n, seconds, "quiet"))
        worker = stack.start_ours(BOT_STORE="memory", BOT_MAX_ROOMS="2000")
        await asyncio.sleep(3)
        for n in sizes:
            show(await ours(stack, worker.pid, n, n, seconds))
        if users:
            rooms = max(1, -(-users // per_room))
            show(await ours(stack, worker.pid, rooms, users, seconds))
        stop_process(worker, 30)
    finally:
        stack.close()
    return results


def table(results: list[Idle]) -> str:
    header = ["process", "idle rooms", "conversations", "CPU ms/s: none → N", "per room"]
    header += ["PSS MB: none → N", "per room", "load generators: processes, CPU ms/s"]
    rows = [
        [
            r.what,
            str(r.rooms),
            str(r.users),
            f"{r.before.cpu_ms_s:.1f} → {r.after.cpu_ms_s:.1f}",
            f"{r.cpu_per_room:.2f}",
            f"{r.before.pss_mb:.0f} → {r.after.pss_mb:.0f}",
            f"{r.mb_per_room:.2f}",
            f"{r.generators}, {r.generator_cpu_ms_s:.0f}" if r.generators else "–",
        ]
        for r in results
    ]
    return md_table(header, rows)


def thread_table(results: list[Idle]) -> str:
    """CPU ms/s per room by thread, for the largest N of each process kind."""
    picked: dict[str, Idle] = {}
    for r in results:
        if r.users == r.rooms and r.rooms >= picked.get(r.what, r).rooms:
            picked[r.what] = r
    names: list[str] = []
    for r in picked.values():
        for name, v in r.per_room_by_thread().items():
            if v >= 0.005 and name not in names:
                names.append(name)
    header = ["thread", *(f"{w} ({r.rooms})" for w, r in picked.items())]
    rows = [
        [f"`{name}`", *(f"{r.per_room_by_thread().get(name, 0.0):.3f}" for r in picked.values())]
        for name in names
    ]
    return md_table(header, rows)


def section(results: list[Idle], seconds: float, took: float) -> str:
    return (
        f"{MARK_START}\n## Idle rooms (`python -m bench.idle`)\n\n"
        f"Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M')}, {took:.0f} s. Rooms "
        f"joined one at a time, then {seconds:.0f} s of silence measured; per room = "
        "(with N rooms − with none) / N. The floor is a process holding N bare data-only "
        "`rtc.Room` connections: once as livekit.rtc sets itself up, once with its native "
        "logs kept in Rust (as our worker runs). The clients are in load-generator "
        f"processes of their own, {ROOMS_PER_GENERATOR} connections each.\n\n"
        f"{table(results)}\n\nCPU ms/s per idle room, by thread:\n\n"
        f"{thread_table(results)}\n{MARK_END}\n"
    )


def main() -> None:
    sdk.enable()  # the load generator: many clients, as cheap as the worker's rooms
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", default="10,50,200", help="idle room counts (curve)")
    parser.add_argument("--users", type=int, default=1000, help="conversations to hold (0: no)")
    parser.add_argument("--users-per-room", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0, help="each measurement")
    parser.add_argument("--publish", action="store_true", help="write docs/performance.md")
    parser.add_argument("--hold", help=argparse.SUPPRESS)  # a holder process: sdk|quiet|client
    parser.add_argument("--seats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold:
        asyncio.run(_hold(args.hold, [tuple(s) for s in json.loads(args.seats)]))
        os._exit(0)  # not the interpreter's teardown: livekit's FFI threads may still call in
    sizes = [int(s) for s in args.rooms.split(",")]
    print(
        f"idle rooms: {sizes}, {args.users} conversations, {args.seconds:.0f} s per measurement",
        flush=True,
    )
    started = time.monotonic()
    results = asyncio.run(run(sizes, args.users, args.users_per_room, args.seconds))
    print(table(results))
    print(thread_table(results))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "idle.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    if args.publish:
        text = section(results, args.seconds, time.monotonic() - started)
        publish_section(text, ROOT / "docs" / "performance.md", MARK_START, MARK_END)


if __name__ == "__main__":
    main()
