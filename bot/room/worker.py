"""The worker: registers with livekit-server and runs every room it is given.

`serve()` is what `bot start`, `bot dev` and `bot up` run. The rooms live on this
process's event loop (`host.py`); `link.py` speaks LiveKit's agent worker protocol.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from ..config import Settings
from ..llm import local as local_llm
from ..llm.local import LocalModelServer
from ..store import ConversationKey, describe, from_settings
from ..store.base import Store
from .capacity import RoomKeeper
from .health import HealthServer
from .host import RoomHost
from .link import WorkerLink
from .liveness import WorkerRegistry

log = logging.getLogger("bot")


def _use_local_model(settings: Settings) -> tuple[Settings, LocalModelServer]:
    """Start the local model and point this process and its rooms at it."""
    log.info(
        "no LLM endpoint configured: answering with the local model SmolLM2-135M (offline). "
        "To use another model set OPENAI_API_KEY, or OPENAI_BASE_URL and BOT_MODEL."
    )
    server = local_llm.start(override=settings.local_model_path, threads=settings.local_threads)
    if settings.llm_tools:
        log.info("tools are off: the local model cannot call them")
    resolved = settings.model_copy(
        update={
            "openai_base_url": server.base_url,
            "openai_api_key": "local",
            "model": "local",
            "llm_mode": "openai",
            "llm_tools": False,
        }
    )
    return resolved, server


async def serve(
    settings: Settings,
    *,
    dev: bool,
    ready_file: Path | None = None,
    on_ready: Callable[[], None] | None = None,
    child: bool = False,
) -> None:
    """Run until SIGINT/SIGTERM, then end every room (each sender gets its turn.end).
    `on_ready` is called once, when the worker first registered with LiveKit. A `child`
    (one of `processes.py`'s) serves HTTP on a free loopback port and tells its parent
    on stdout: `port N`, then `ready WORKER_ID` at each registration."""
    local: LocalModelServer | None = None
    if settings.resolved_llm_mode() == "local":
        settings, local = await asyncio.to_thread(_use_local_model, settings)
    try:
        await _serve(settings, dev=dev, ready_file=ready_file, on_ready=on_ready, child=child)
    finally:
        if local is not None:
            local.stop()


async def _open_store(settings: Settings) -> Store:
    """The process's conversation store, reached once before taking rooms (a wrong
    Redis URL fails here, not in every room); conversations past BOT_STORE_TTL go."""
    store = from_settings(settings)
    try:
        await store.load(ConversationKey("", "-"))
        purged = await store.purge_expired()
    except BaseException:
        await store.aclose()
        raise
    expired = f"; {purged} expired conversations deleted" if purged else ""
    log.info("conversations kept in %s%s", describe(settings.store), expired)
    return store


async def _serve(
    settings: Settings,
    *,
    dev: bool,
    ready_file: Path | None,
    on_ready: Callable[[], None] | None,
    child: bool,
) -> None:
    store = await _open_store(settings)
    registry = WorkerRegistry()
    host = RoomHost(settings, store, liveness=registry.state)
    keeper = RoomKeeper(settings, handling=host.handling, registry=registry)

    def on_registered(worker_id: str) -> None:
        nonlocal on_ready
        how = f"agent name {settings.agent_name!r}" if settings.agent_name else "automatic dispatch"
        log.info("ready: registered with %s as %s (%s)", settings.livekit_url, worker_id, how)
        keeper.registered(worker_id)
        if ready_file is not None:
            ready_file.write_text(worker_id)
        if child:
            print(f"ready {worker_id}", flush=True)
        if on_ready is not None:  # the first registration only
            on_ready()
            on_ready = None

    link = WorkerLink(
        host,
        url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        agent_name=settings.agent_name,
        on_registered=on_registered,
    )
    host.link = link
    health = HealthServer(host)
    local_only = dev or child
    await health.start(
        "127.0.0.1" if local_only else "0.0.0.0", 0 if local_only else settings.http_port
    )
    if child:
        print(f"port {health.port}", flush=True)
    log.info("HTTP on port %d: GET / (health), /worker, /metrics (Prometheus)", health.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    run = asyncio.create_task(link.run(), name="worker-link")
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down")
        link.drain()
        await host.aclose()
    finally:
        await keeper.aclose()
        for task in (run, waiter):
            task.cancel()
        await asyncio.gather(run, waiter, return_exceptions=True)
        await health.aclose()
        await store.aclose()
    if run.done() and not run.cancelled() and run.exception() is not None:
        raise RuntimeError("the worker stopped with an error") from run.exception()
