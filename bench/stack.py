"""The processes a benchmark runs: server, scripted LLM, the two workers, the echo floor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from livekit import api

from bot.dev import livekit_server
from bot.dev.processes import free_port, stop_process, wait_until

ROOT = livekit_server.ROOT
OURS_AGENT = "lkbot-bench"
PEER_AGENT = "agents-peer"


@dataclass
class Stack:
    lk: livekit_server.DevServer
    llm_url: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lkbot-bench-")))

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "OPENAI_"))}
        env.update(
            LIVEKIT_URL=self.lk.url,
            LIVEKIT_API_KEY=self.lk.api_key,
            LIVEKIT_API_SECRET=self.lk.api_secret,
            PYTHONPATH=str(ROOT),
        )
        env.update(extra)
        return env

    def spawn(
        self, args: list[str], name: str, *, root: Path | str = ROOT, **env: str
    ) -> subprocess.Popen[bytes]:
        """`python <args>` in `root` (another checkout of the project: its code runs)."""
        log = (self.logdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, *args],
            env=self.env(**{**env, "PYTHONPATH": str(root)}),
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def start_ours(
        self, *, root: Path | str = ROOT, name: str = "ours", **env: str
    ) -> subprocess.Popen[bytes]:
        """Our worker (`python -m bot start`, from the checkout `root`) on the scripted
        LLM, once registered."""
        ready = self.logdir / f"{name}.ready"
        ready.unlink(missing_ok=True)  # a worker started before in this stack left it
        ours = self.spawn(
            ["-m", "bot", "start", "--ready-file", str(ready)],
            name,
            root=root,
            **{
                "OPENAI_BASE_URL": self.llm_url,
                "BOT_MODEL": "scripted",
                "BOT_HTTP_PORT": "0",
                "BOT_PROCESSES": "1",  # the benches measure what one process holds
                **env,
            },
        )
        wait_until(ready.exists, ours, self.logdir / f"{name}.log", what="our worker", timeout=120)
        return ours

    def start_workers(self, **env: str) -> None:
        common = {
            "OPENAI_BASE_URL": self.llm_url,
            "BOT_MAX_ROOMS": "1000",  # capacity is not what the sweep measures
            "BOT_LOG_LEVEL": "WARNING",
            **env,
        }
        ours = self.start_ours(BOT_AGENT_NAME=OURS_AGENT, **common)
        peer = self.start_peer(**common)
        self.workers = {"ours": ours, "peer": peer}

    def start_echo(self, rooms: list[str], *, on_go: bool = False) -> subprocess.Popen[bytes]:
        """The echo participant, in `rooms` (with `on_go`: once told, see bench.echo)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.echo", "--rooms", ",".join(rooms)]
            + (["--on-go"] if on_go else []),
            env=self.env(),
            cwd=ROOT,
            stdin=subprocess.PIPE if on_go else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != (b"up" if on_go else b"ready"):
            raise RuntimeError("the echo participant did not start")
        return proc

    def start_peer(self, **env: str) -> subprocess.Popen[bytes]:
        """LiveKit Agents' AgentSession worker (agent name PEER_AGENT), once registered."""
        ready = self.logdir / "peer.ready"
        ready.unlink(missing_ok=True)
        peer = self.spawn(
            ["-m", "bench.peer_agent"],
            "peer",
            **{
                "OPENAI_BASE_URL": self.llm_url,
                "PEER_AGENT_NAME": PEER_AGENT,
                "PEER_READY_FILE": str(ready),
                **env,
            },
        )
        wait_until(
            ready.exists, peer, self.logdir / "peer.log", what="the AgentSession peer", timeout=120
        )
        return peer

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc, 20)
        self.lk.stop()


def start_stack(**env: str) -> Stack:
    """Server, scripted LLM and both workers (`env`: more of their settings)."""
    stack = start_server_and_llm()
    stack.start_workers(**env)
    return stack


def start_server_and_llm(webhook: str | None = None) -> Stack:
    """A loopback livekit-server (posting its webhooks to `webhook`, if given) and the
    scripted LLM; workers are the caller's."""
    lk = livekit_server.start(webhook=webhook)
    port = free_port()
    stack = Stack(lk=lk, llm_url=f"http://127.0.0.1:{port}/v1")
    llm = stack.spawn(["-m", "bot.testing.llm_server", "--port", str(port)], "llm")
    log = stack.logdir / "llm.log"
    wait_until(
        lambda: "scripted LLM server on" in log.read_text(),
        llm,
        log,
        what="the scripted LLM server",
        timeout=30,
    )
    return stack


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and of its descendants alive now."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += cpu_seconds(proc.pid)
    return total


def nearest_rank(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank, or None with no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def drain(lk: livekit_server.DevServer, timeout: float = 120) -> None:
    """Wait (bounded) until the server has closed every room (the bots have left)."""
    http = lk.url.replace("ws://", "http://")
    deadline = time.monotonic() + timeout
    async with api.LiveKitAPI(http, lk.api_key, lk.api_secret) as lkapi:
        while time.monotonic() < deadline:
            if not (await lkapi.room.list_rooms(api.ListRoomsRequest())).rooms:
                return
            await asyncio.sleep(1)


class TreeSampler:
    """Samples CPU seconds and memory of a process and its children, in the background.

    Memory is PSS (proportional set size): job processes forked from one server share
    most of their pages, which RSS would count once per process."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self._root = psutil.Process(pid)
        self._interval = interval
        self.samples: list[tuple[float, float, int]] = []  # (time.time, cpu s, pss bytes)
        self._cpu_of: dict[int, float] = {}  # last CPU seen per pid, kept after exit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        pss = 0
        for proc in [self._root, *self._root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                self._cpu_of[proc.pid] = t.user + t.system
                pss += proc.memory_full_info().pss
            except psutil.Error:
                continue
        self.samples.append((time.time(), sum(self._cpu_of.values()), pss))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def cpu_between(self, t0: float, t1: float) -> float:
        before = [s for s in self.samples if s[0] <= t0]
        after = [s for s in self.samples if s[0] >= t1]
        if not before or not after:
            return float("nan")
        return after[0][1] - before[-1][1]

    def mem_max_between(self, t0: float, t1: float) -> int:
        inside = [s[2] for s in self.samples if t0 <= s[0] <= t1]
        return max(inside) if inside else 0

    def mem_now(self) -> int:
        self._sample()
        return self.samples[-1][2]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
