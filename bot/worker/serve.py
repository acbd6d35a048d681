"""The worker: registers with livekit-server and runs every room it is given.

`serve()` is what `bot start`, `bot dev` and `bot up` run. The rooms live on this
process's event loop (`host.py`); `link.py` speaks LiveKit's agent worker protocol.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from livekit import api

from ..config import Settings
from ..fleet.keeper import FleetKeeper
from ..llm import local as local_llm
from ..llm.local import LocalModelServer
from ..llm.tools.mcp import McpTools
from ..store import ConversationKey, describe, from_settings
from ..store.base import Store
from ..tasks import supervise
from .health import HealthServer
from .host import RoomHost
from .link import WorkerLink

log = logging.getLogger("bot")


def _use_local_model(settings: Settings) -> tuple[Settings, LocalModelServer]:
    """Start the local model and point this process and its rooms at it."""
    log.info(
        "no LLM endpoint configured: answering with the local model SmolLM2-135M (offline). "
        "To use another model set OPENAI_API_KEY, or OPENAI_BASE_URL and BOT_MODEL."
    )
    server = local_llm.start(override=settings.local_model_path, threads=settings.local_threads)
    if settings.llm_tools:
        log.info("tools are off: the local model calls them wrong (measured: docs/tools.md)")
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


async def _until_orphaned(stop: asyncio.Event) -> None:
    """A child's stdin is a pipe from its supervisor (`processes.py`), never written:
    EOF means the supervisor is gone, even by kill -9. Stop as on SIGTERM."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    log.warning("the supervising process is gone: stopping")
    stop.set()


async def _hand_over(
    host: RoomHost, keeper: FleetKeeper, timeout: float, hurry: asyncio.Event
) -> None:
    """Draining: every room is handed to another worker's bot where one is registered
    (else its turns end first), bounded by `timeout` and by a second signal."""
    try:
        await keeper.leases.renew()  # who is alive now: a worker may have just started
    except Exception as e:
        log.warning("could not read the fleet's leases: %s", e)
    successor = keeper.api if keeper.others_alive() else None
    log.info(
        "draining: handing %d rooms over%s (at most %gs; a second signal: at once)",
        len(host.rooms),
        " to the other workers" if successor else " (no other worker: turns end first)",
        timeout,
    )
    drain = asyncio.create_task(host.drain(successor, timeout))
    hurried = asyncio.create_task(hurry.wait())
    await asyncio.wait({drain, hurried}, return_when=asyncio.FIRST_COMPLETED)
    for task in (drain, hurried):
        task.cancel()
    await asyncio.gather(drain, hurried, return_exceptions=True)


async def _serve(
    settings: Settings,
    *,
    dev: bool,
    ready_file: Path | None,
    on_ready: Callable[[], None] | None,
    child: bool,
) -> None:
    store = await _open_store(settings)
    mcp = McpTools(settings)
    await mcp.start()  # one session per server for every room of this process
    keeper = FleetKeeper(settings, store, handling=lambda: host.handling())
    host = RoomHost(settings, store, liveness=keeper.state, mcp=mcp)

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
    receiver = api.WebhookReceiver(
        api.TokenVerifier(settings.livekit_api_key, settings.livekit_api_secret)
    )

    def webhook(body: str, auth: str) -> bool:
        try:
            event = receiver.receive(body, auth)
        except Exception as e:
            log.info("a webhook was refused: %s", e)
            return False
        keeper.webhook(event)
        return True

    health = HealthServer(host, ready=link.ready, webhook=webhook)
    local_only = dev or child
    await health.start(
        "127.0.0.1" if local_only else settings.http_host,
        0 if local_only else settings.http_port,
    )
    if child:
        print(f"port {health.port}", flush=True)
    log.info("HTTP on port %d: GET / (health), /worker, /metrics (Prometheus)", health.port)
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            hurry.set()  # a second signal: leave every room at once
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    if child:
        orphaned = supervise(_until_orphaned(stop), name="parent-watch")
    run = asyncio.create_task(link.run(), name="worker-link")
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
        link.drain()
        if not run.done() and host.rooms:
            await _hand_over(host, keeper, settings.drain_timeout, hurry)
        log.info("shutting down")
        await host.aclose()
    finally:
        await keeper.aclose()
        tasks = [run, waiter, *([orphaned] if child else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await health.aclose()
        await mcp.aclose()
        await store.aclose()
    if run.done() and not run.cancelled() and run.exception() is not None:
        raise RuntimeError("the worker stopped with an error") from run.exception()
