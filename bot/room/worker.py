"""The LiveKit agent worker: one job per room, joined with no media subscription."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livekit.agents import AgentServer, AutoSubscribe, JobContext, JobExecutorType

from ..config import Settings
from ..core.dispatcher import Dispatcher
from ..core.tasks import supervise
from ..llm import local as local_llm
from ..llm.endpoint import build_llm
from ..llm.local import LocalModelServer
from ..llm.tools import load_tools
from ..protocol.attributes import (
    PROTOCOL_ATTRIBUTE,
    SINCE_ATTRIBUTE,
    TOPICS_ATTRIBUTE,
    WORKER_ATTRIBUTE,
)
from ..protocol.version import PROTOCOL_VERSION
from ..store import describe, from_settings
from ..turns.engine import TurnEngine
from .capacity import AcceptWhileRoom, RoomKeeper, RoomLoad
from .liveness import WorkerRegistry
from .one_bot import OneBotPerRoom
from .rtc_transport import RoomTransport

log = logging.getLogger("bot")

# The dispatcher of each running job, for session_end (keyed by job id: the
# thread executor runs several jobs in one process).
_DISPATCHERS: dict[str, Dispatcher] = {}


@dataclass(frozen=True)
class RoomJob:
    """What every job runs, with the settings `serve()` was given.

    livekit-agents pickles the entrypoint into each job process: the resolved settings
    travel with it, so a job never re-reads the environment and runs with exactly
    what the worker was started with (also settings built in code, by tests)."""

    settings: Settings

    async def entrypoint(self, ctx: JobContext) -> None:
        await _run_room(self.settings, ctx)

    async def session_end(self, ctx: JobContext) -> None:
        """Runs before the room is disconnected: running turns end, and their
        `turn.end{cancelled, reason: shutdown}` still reaches each sender."""
        dispatcher = _DISPATCHERS.pop(ctx.job.id, None)
        if dispatcher is not None:
            await dispatcher.aclose()


async def _run_room(settings: Settings, ctx: JobContext) -> None:
    transport = RoomTransport(ctx.room)
    model = build_llm(settings)
    tools = load_tools(settings, transport.peers) if settings.llm_tools else []
    engine = TurnEngine(settings, model, tools)
    store = from_settings(settings)
    dispatcher = Dispatcher(settings, transport, engine, store=store, room=ctx.job.room.name)
    transport.attach(dispatcher)  # before connect: no packet arrives unseen
    _DISPATCHERS[ctx.job.id] = dispatcher

    async def after_disconnect(reason: str) -> None:
        _DISPATCHERS.pop(ctx.job.id, None)
        await dispatcher.aclose()  # no-op when on_session_end already closed it
        await model.aclose()
        await store.aclose()

    ctx.add_shutdown_callback(after_disconnect)
    since = time.time_ns()
    guard = OneBotPerRoom(
        ctx.room,
        since_ns=since,
        agent_name=settings.agent_name,
        liveness=WorkerRegistry().state,
        leave=lambda: ctx.shutdown("another bot serves this room"),
    )
    await ctx.connect(auto_subscribe=AutoSubscribe.SUBSCRIBE_NONE)
    # Participants that publish no media are announced to the room in 3 s batches;
    # an attribute change is announced at once, so clients see the bot right away.
    attributes = {
        PROTOCOL_ATTRIBUTE: str(PROTOCOL_VERSION),
        TOPICS_ATTRIBUTE: ",".join(settings.topics),
        WORKER_ATTRIBUTE: ctx.worker_id,  # the dispatch watchdog tells dead bots by it
        SINCE_ATTRIBUTE: str(since),  # the younger of two bots leaves (one_bot.py)
    }
    await ctx.room.local_participant.set_attributes(attributes)
    guard.check()

    # A restarted livekit-server has forgotten them: without them clients no longer
    # recognise the bot (and drop its packets as forged).
    def reannounce() -> None:
        supervise(ctx.room.local_participant.set_attributes(attributes), name="reannounce")

    ctx.room.on("reconnected", reannounce)
    log.info("joined a room; listening on topics %s", ",".join(settings.topics))


def build_server(
    settings: Settings, *, dev: bool, accept: AcceptWhileRoom | None = None
) -> AgentServer:
    """The livekit-agents server; `accept` (made here if not given) decides on rooms."""
    accept = accept or AcceptWhileRoom(settings.max_rooms)
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        port=0 if dev else settings.http_port,
        host="127.0.0.1" if dev else "",
        job_executor_type=JobExecutorType(settings.job_executor),
        # Capacity, not CPU (capacity.py). livekit-agents' own availability check is
        # off (inf): with no room yet it counts each room in flight as a big share of
        # the threshold and refuses most of a burst; AcceptWhileRoom decides instead.
        load_fnc=RoomLoad(settings.max_rooms, settings.livekit_target_load),
        load_threshold=float("inf"),
        # a burst of new rooms on a small, busy box can take longer than the default 10 s
        initialize_process_timeout=30.0,
        num_idle_processes=1 if dev else 2,
        log_level="WARN" if settings.log_level == "WARNING" else settings.log_level,
    )
    job = RoomJob(settings)
    server.rtc_session(
        job.entrypoint,
        agent_name=settings.agent_name,
        on_request=accept,
        on_session_end=job.session_end,
    )
    accept.server = server
    return server


def _use_local_model(settings: Settings) -> tuple[Settings, LocalModelServer]:
    """Start the local model and point this process and its jobs at it."""
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


async def serve(settings: Settings, *, dev: bool, ready_file: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM, then end every job (each sender gets its turn.end)."""
    local: LocalModelServer | None = None
    if settings.resolved_llm_mode() == "local":
        settings, local = await asyncio.to_thread(_use_local_model, settings)
    try:
        await _serve(settings, dev=dev, ready_file=ready_file)
    finally:
        if local is not None:
            local.stop()


async def _check_store(settings: Settings) -> None:
    """Reach the store once before taking rooms (a wrong Redis URL fails here, not in
    every room), and drop conversations past BOT_STORE_TTL."""
    from ..store import ConversationKey

    store = from_settings(settings)
    try:
        await store.load(ConversationKey("", "-"))
        purged = await store.purge_expired()
    finally:
        await store.aclose()
    expired = f"; {purged} expired conversations deleted" if purged else ""
    log.info("conversations kept in %s%s", describe(settings.store), expired)


async def _serve(settings: Settings, *, dev: bool, ready_file: Path | None) -> None:
    await _check_store(settings)
    accept = AcceptWhileRoom(settings.max_rooms)
    server = build_server(settings, dev=dev, accept=accept)
    keeper = RoomKeeper(settings, handling=accept.handling)

    def on_registered(worker_id: str, *_: Any) -> None:
        how = f"agent name {settings.agent_name!r}" if settings.agent_name else "automatic dispatch"
        log.info("ready: registered with %s as %s (%s)", settings.livekit_url, worker_id, how)
        keeper.registered(worker_id)
        if ready_file is not None:
            ready_file.write_text(worker_id)

    server.on("worker_registered", on_registered)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    run = asyncio.create_task(server.run(devmode=dev))
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down")
    await keeper.aclose()
    await server.aclose()
    waiter.cancel()
    await asyncio.gather(run, waiter, return_exceptions=True)
    if run.done() and not run.cancelled() and run.exception() is not None:
        raise RuntimeError("the worker stopped with an error") from run.exception()
