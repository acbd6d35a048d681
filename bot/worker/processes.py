"""`bot start` on a machine with several cores: one worker process per core, supervised.

Each process is a whole worker (`worker.serve`): it registers with livekit-server on
its own and reports its own load, so LiveKit spreads the rooms over them; all the rooms
of a process share its event loop, LLM client and store (`host.py`). One process per
core, not one per room: a room costs ~1 ms of CPU per second and ~1 MB idle
(docs/performance.md), a process ~135 MB before its first room.

Why more than one: a process runs its Python (every turn) on one core, and its
libwebrtc network thread (every packet of its rooms) on one thread too. Why not one per
room: that is livekit-agents' process executor, 27 MB per room and a fork per join.

This parent does no LiveKit work itself. It starts the processes (`bot start --child`),
restarts one that exits (with backoff; its rooms are meanwhile brought a bot by the
dispatch watchdog of the others, their conversations continue from the store), and
serves the HTTP port (BOT_HTTP_PORT): `/` is 200 while every process runs, `/worker`
lists them, `/metrics` merges their metrics, each sample labelled `process="N"`
(`sum without (process) (...)` for the whole worker), and adds its own.
On SIGTERM/SIGINT it passes the signal on and waits for every room to end. When
it dies without that (kill -9, OOM), its processes see their stdin close and stop
too, so no worker lives on unsupervised next to a restarted `bot start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from ..config import Settings
from ..tasks import supervise
from .health import serve_http

log = logging.getLogger("bot")

RESTART_MIN_S, RESTART_MAX_S = 1.0, 30.0
STABLE_S = 60.0  # a process that ran this long restarts without backoff
SCRAPE_TIMEOUT_S = 5.0


def default_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def count(settings: Settings) -> int:
    if settings.resolved_llm_mode() == "local":
        return 1  # one local model server, for one process
    return settings.processes or default_count()


class Child:
    """One worker process; it says `port N` and `ready WORKER_ID` on its stdout."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.port: int | None = None
        self.worker_id = ""
        self.registered = asyncio.Event()
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def run(self) -> int:
        """Start the process and follow what it says until it exits; its exit code."""
        self.port = None
        env = {**os.environ, "LKBOT_PROCESS": str(self.index)}
        # stdin: a pipe this process never writes to; when it dies, however it dies
        # (kill -9 included), the child reads EOF and stops (worker.serve)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "start", "--child", env=env, stdout=PIPE, stdin=PIPE
        )
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            word, _, value = line.decode(errors="replace").strip().partition(" ")
            if word == "port":
                self.port = int(value)
            elif word == "ready":
                self.worker_id = value
                self.registered.set()
        return await self.proc.wait()


class Merged(Collector):
    """The processes' metric families, one family each, samples labelled by process."""

    def __init__(self, texts: dict[int, str]) -> None:
        self._texts = texts

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for index, text in sorted(self._texts.items()):
            for family in text_string_to_metric_families(text):
                merged = families.get(family.name)
                if merged is None:
                    merged = Metric(family.name, family.documentation, family.type, family.unit)
                    families[family.name] = merged
                for s in family.samples:
                    labels = {**s.labels, "process": str(index)}
                    merged.add_sample(s.name, labels, s.value, s.timestamp, s.exemplar)
        yield from families.values()


class Supervisor:
    def __init__(self, settings: Settings, n: int, ready_file: Path | None) -> None:
        self._settings = settings
        self._ready_file = ready_file
        self.children = [Child(i) for i in range(n)]
        self._stopping = asyncio.Event()
        self.port = 0
        self._own = CollectorRegistry()
        self._restarts = Counter(
            "lkbot_worker_process_restarts",
            "Worker processes restarted after they exited",
            registry=self._own,
        )
        Gauge(
            "lkbot_worker_processes", "Worker processes running", registry=self._own
        ).set_function(lambda: sum(c.running for c in self.children))

    # -- keeping the processes up ----------------------------------------------------

    async def _keep(self, child: Child) -> None:
        delay = RESTART_MIN_S
        while not self._stopping.is_set():
            started = time.monotonic()
            code = await child.run()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > STABLE_S:
                delay = RESTART_MIN_S
            log.warning(
                "worker process %d exited (code %s): restarting it in %.0f s; the dispatch "
                "watchdog of the others brings its rooms a bot meanwhile",
                child.index,
                code,
                delay,
            )
            child.restarts += 1
            self._restarts.inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(RESTART_MAX_S, delay * 2)

    async def _announce_ready(self) -> None:
        await asyncio.gather(*(c.registered.wait() for c in self.children))
        log.info("ready: %d worker processes registered", len(self.children))
        if self._ready_file is not None:
            self._ready_file.write_text("\n".join(c.worker_id for c in self.children))

    # -- the HTTP port ---------------------------------------------------------------

    async def _scrape(self, http: aiohttp.ClientSession, child: Child, path: str) -> str | None:
        port = child.port
        if port is None or not child.running:
            return None
        try:
            async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                return await r.text() if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _gather(self, path: str) -> dict[int, str]:
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            texts = await asyncio.gather(*(self._scrape(http, c, path) for c in self.children))
        return {c.index: t for c, t in zip(self.children, texts, strict=True) if t is not None}

    async def _health(self, _request: web.Request) -> web.Response:
        down = [c.index for c in self.children if not c.running]
        if down:
            return web.Response(status=503, text=f"worker processes down: {down}")
        return web.Response(text="OK")

    async def _readiness(self, _request: web.Request) -> web.Response:
        ready = await self._gather("/ready")  # a child not ready answers 503: left out
        unready = [c.index for c in self.children if c.index not in ready]
        if unready:
            return web.Response(status=503, text=f"worker processes not registered: {unready}")
        return web.Response(text="ready")

    async def _webhook(self, request: web.Request) -> web.Response:
        """LiveKit's webhooks go to one running process (any can look at a room)."""
        child = next((c for c in self.children if c.running and c.port), None)
        if child is None:
            return web.Response(status=503, text="no worker process runs")
        headers = {"Authorization": request.headers.get("Authorization", "")}
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(
                f"http://127.0.0.1:{child.port}/webhook",
                data=await request.read(),
                headers=headers,
            ) as r,
        ):
            return web.Response(status=r.status, text=await r.text())

    async def _worker(self, _request: web.Request) -> web.Response:
        texts = await self._gather("/worker")
        return web.json_response(
            [
                {
                    "process": c.index,
                    "pid": c.proc.pid if c.proc else None,
                    "worker_id": c.worker_id,
                    "running": c.running,
                    "restarts": c.restarts,
                    **(json.loads(texts[c.index]) if c.index in texts else {}),
                }
                for c in self.children
            ]
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        registry = CollectorRegistry()
        registry.register(Merged(await self._gather("/metrics")))
        body = generate_latest(registry) + generate_latest(self._own)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        routes = {
            "/": self._health,
            "/ready": self._readiness,
            "/worker": self._worker,
            "/metrics": self._metrics,
            "POST /webhook": self._webhook,
        }
        runner, self.port = await serve_http(
            routes, self._settings.http_host, self._settings.http_port
        )
        log.info(
            "%d worker processes (BOT_PROCESSES; one per core by default); HTTP on port %d: "
            "GET / (health), /ready, /worker, /metrics (Prometheus, all processes)",
            len(self.children),
            self.port,
        )
        # supervised: a keeper that fails (the process cannot be started) is logged at
        # once, not only when its exception is gathered at shutdown
        keepers = [
            supervise(self._keep(c), name=f"worker process {c.index}") for c in self.children
        ]
        ready = supervise(self._announce_ready(), name="worker processes ready")
        try:
            await self._stopping.wait()
            log.info("shutting down %d worker processes", len(self.children))
            for c in self.children:
                if c.running and c.proc is not None:
                    c.proc.send_signal(signal.SIGTERM)
            await asyncio.gather(*keepers)
        finally:
            ready.cancel()
            for task in keepers:
                task.cancel()
            await asyncio.gather(ready, *keepers, return_exceptions=True)
            for c in self.children:  # only if the wait above was cut short
                if c.running and c.proc is not None:
                    c.proc.kill()
            await runner.cleanup()
