"""Many rooms in one process: each room's bot is a task on the worker's event loop.

livekit-agents runs one job per room in a process (or a thread with its own event
loop), with a job context, an IPC channel, a loop monitor and a process pool around
each. A text bot needs none of that, and paid for it in joins: a burst of 50 rooms on a
2-core box took 11–17 s per room, and the thread executor lost rooms outright (its
loops starved each other until livekit's FFI gave up waiting for a room's
`ReadyForRoomEvent` and aborted the process). Here a room is an `rtc.Room`, a transport
and a dispatcher on one loop; the LLM HTTP client, the tools' settings and the
conversation store are the process's. A crash in one room's code ends that room's bot
(logged, the job reported failed, the dispatch watchdog brings a new one), never the
others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from livekit import api, rtc
from livekit.protocol import agent

from .. import metrics, sdk
from ..config import Settings
from ..core.dispatcher import Dispatcher
from ..fleet.leases import Liveness
from ..fleet.one_bot import OneBotPerRoom
from ..llm.endpoint import build_llm
from ..llm.tools import load_tools
from ..llm.tools.mcp import McpTools
from ..protocol.attributes import (
    AGENT_NAME_ATTRIBUTE,
    HANDING_OVER_ATTRIBUTE,
    PROTOCOL_ATTRIBUTE,
    SINCE_ATTRIBUTE,
    TOPICS_ATTRIBUTE,
    WORKER_ATTRIBUTE,
)
from ..protocol.version import PROTOCOL_VERSION
from ..room import lk_chat, options
from ..room.options import data_only
from ..room.rtc_transport import RoomTransport
from ..store.base import Store
from ..tasks import supervise
from ..turns.engine import TurnEngine
from .capacity import RoomLoad
from .link import Offer, WorkerLink

log = logging.getLogger("bot")

OFFER_KEPT_S = 60.0  # an accepted room whose assignment never came stops counting
# Shutting down: how long the bots get to leave their rooms once told to (a left room's
# turns end within the dispatcher's own bound); past it, what is still running is
# cancelled, and logged with the step it was stuck at, so that the process exits.
LEAVE_GRACE_S = 30.0
CANCEL_GRACE_S = 5.0


class BotInRoom:
    """One room's bot, from connect to leave."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        job: agent.Job,
        *,
        worker_id: str,
        liveness: Callable[[str], Liveness],
        joining: asyncio.Semaphore,
        offered_at: float | None = None,
        mcp: McpTools | None = None,
    ) -> None:
        self.job = job
        self._mcp = mcp
        self._offered_at = offered_at
        self._joining = joining
        self._settings = settings
        self._store = store
        self._worker_id = worker_id
        self._liveness = liveness
        self._left = asyncio.Event()
        self._why = ""
        self.dispatcher: Dispatcher | None = None
        self._room: rtc.Room | None = None
        self._guard: OneBotPerRoom | None = None
        self.step = "waiting for a join slot"  # where it is, for a shutdown that hangs

    def leave(self, why: str) -> None:
        if not self._left.is_set():
            self._why = why
            self._left.set()

    async def hand_over(self, lkapi: api.LiveKitAPI | None, timeout: float) -> None:
        """Leave the room to another bot of ours (SIGTERM: the worker drains): start no
        new turn, ask LiveKit for a successor (`lkapi`: another worker is registered),
        then leave once the running turns have ended and the successor is in the room,
        or after `timeout`. Clients talk to this bot until it leaves."""
        room, guard, dispatcher = self._room, self._guard, self.dispatcher
        if room is None or guard is None or dispatcher is None or self._left.is_set():
            self.leave("shutdown")
            return
        try:
            async with asyncio.timeout(timeout):
                await options.set_attributes(room.local_participant, {HANDING_OVER_ATTRIBUTE: "1"})
                if lkapi is not None:
                    await lkapi.agent_dispatch.create_dispatch(
                        api.CreateAgentDispatchRequest(
                            agent_name=self._settings.agent_name, room=self.job.room.name
                        )
                    )
                await dispatcher.hand_over(timeout)
                if lkapi is not None:
                    await guard.successor.wait()
            self.leave("handed over")
        except TimeoutError:
            self.leave("handing over took too long")
        except Exception as e:  # the API unreachable: leave as a plain shutdown would
            log.warning("could not hand a room over: %s", e)
            self.leave("shutdown")

    async def _record(self, *, serving: bool) -> None:
        """Tell the fleet's store which rooms this worker's bots are in (best effort:
        the slow reconciliation scan still finds a room that was not recorded)."""
        room, worker = self.job.room.name, self._worker_id
        try:
            if serving:
                await self._store.serve_room(room, worker)
            else:
                await self._store.left_room(room, worker)
        except Exception as e:
            log.warning("could not record a room in the store: %s", e)

    async def run(self, url: str, token: str) -> None:
        settings = self._settings
        room = rtc.Room()
        chat_topic = settings.topics[0] if settings.lk_chat else None
        limits = lk_chat.stream_limits(settings)
        transport = RoomTransport(room, lk_chat_topic=chat_topic, stream_limits=limits)
        model = build_llm(settings)
        tools = load_tools(settings, transport.peers) if settings.llm_tools else []
        mcp_tools = self._mcp.tools if self._mcp is not None and settings.llm_tools else []
        dispatcher = Dispatcher(
            settings,
            transport,
            TurnEngine(
                settings,
                model,
                tools + mcp_tools,
                mcp_names=frozenset(self._mcp.names if self._mcp and mcp_tools else ()),
            ),
            store=self._store,
            room=self.job.room.name,
        )
        self.dispatcher = dispatcher
        self._room = room
        transport.attach(dispatcher)  # before connect: no packet arrives unseen
        room.on("disconnected", lambda reason: self.leave(f"disconnected ({reason})"))
        since = time.time_ns()
        guard = OneBotPerRoom(
            room,
            since_ns=since,
            agent_name=settings.agent_name,
            liveness=self._liveness,
            leave=lambda: self.leave("another bot serves this room"),
        )
        self._guard = guard
        started = time.monotonic()
        try:
            async with self._joining:
                slot = time.monotonic()
                self.step = "connecting"
                await room.connect(
                    url, token, data_only(max_stream_bytes=lk_chat.stream_payload_cap(limits))
                )
            sdk.bind(room)  # the other rooms' events no longer wake this one
            connected = time.monotonic()
            self.step = "announcing itself"
            # Participants that publish no media are announced in 3 s batches; an
            # attribute change is announced at once, so clients see the bot right away.
            attributes = {
                PROTOCOL_ATTRIBUTE: str(PROTOCOL_VERSION),
                TOPICS_ATTRIBUTE: ",".join(settings.topics),
                WORKER_ATTRIBUTE: self._worker_id,  # the watchdog tells dead bots by it
                SINCE_ATTRIBUTE: str(since),  # the younger of two bots leaves (one_bot.py)
            }
            if chat_topic is not None:  # what LiveKit's useAgent waits for
                attributes[lk_chat.AGENT_STATE] = transport.mirror.state
            await options.set_attributes(room.local_participant, attributes)
            guard.check()
            if room.remote_participants:  # they found us before our attributes: greet
                transport.greet()

            # A restarted livekit-server has forgotten them: without them clients no
            # longer recognise the bot (and drop its packets as forged).
            def reannounce() -> None:
                if chat_topic is not None:
                    attributes[lk_chat.AGENT_STATE] = transport.mirror.state
                supervise(room.local_participant.set_attributes(attributes), name="reannounce")

            room.on("reconnected", reannounce)
            await self._record(serving=True)  # where the watchdog looks if we die
            log.debug(
                "joined room %s (offer to assignment %.2fs, waited for a join slot %.2fs, "
                "connect %.2fs, attributes %.2fs)",
                self.job.room.name,
                started - self._offered_at if self._offered_at is not None else float("nan"),
                slot - started,
                connected - slot,
                time.monotonic() - connected,
            )
            self.step = "serving"
            await self._left.wait()
        finally:
            self.step = "leaving: recording it in the store"
            await self._record(serving=False)
            # running turns end first, and their turn.end still reaches each sender
            transport.close()
            self.step = "leaving: ending its turns"
            await dispatcher.aclose()
            self.step = "leaving: disconnecting"
            with contextlib.suppress(Exception):
                await room.disconnect()
            self.step = "leaving: closing its LLM client"
            await model.aclose()
            log.debug("left room %s: %s", self.job.room.name, self._why or "shutdown")


@dataclass
class RoomHost:
    """The rooms of this worker: what the link offers, assigns and terminates."""

    settings: Settings
    store: Store
    liveness: Callable[[str], Liveness]
    link: WorkerLink | None = None
    mcp: McpTools | None = None  # the MCP servers' tools, one session each per process
    rooms: dict[str, BotInRoom] = field(default_factory=dict)  # job id -> bot
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _offered: dict[str, tuple[str, float]] = field(default_factory=dict)  # job -> (room, when)
    _load: RoomLoad = field(init=False)
    _joining: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._load = RoomLoad(self.settings.max_rooms, self.settings.livekit_target_load)
        # most of a join's CPU was native DEBUG logs crossing to Python, and every FFI
        # event woke every room: the worker is the process, it applies the SDK patches
        sdk.enable()
        # WebRTC setup is CPU-bound. Before native logs stayed in Rust, a burst joined
        # all at once thrashed (connects past their timeouts, retried; 20–60 s of CPU for
        # 50 rooms). Since, the box stays CPU-bound: 50 rooms created by the API on the
        # 2-core box joined by p99 2.1–2.3 s 4 at a time, 2.5 s 8 or 16 at a time and
        # 3.0 s all at once (docs/performance.md): more at once only slows each connect.
        self._joining = asyncio.Semaphore(self.settings.join_concurrency)
        metrics.read_rooms_from(self._counts)

    def _counts(self) -> tuple[int, int, int, float]:
        convs = [
            c
            for b in self.rooms.values()
            if b.dispatcher
            for c in b.dispatcher.conversations.values()
        ]
        return len(self.rooms), len(convs), sum(c.turns.queued for c in convs), self.status()[0]

    def _taken(self) -> int:
        now = time.monotonic()
        for job_id in [j for j, (_, t) in self._offered.items() if now - t > OFFER_KEPT_S]:
            del self._offered[job_id]
        return len(self.rooms) + len(self._offered)

    # -- the link's side ------------------------------------------------------------

    def offer(self, job: agent.Job) -> Offer:
        if self._taken() >= self.settings.max_rooms:
            log.warning(
                "at capacity (%d rooms, BOT_MAX_ROOMS): refusing a room", self.settings.max_rooms
            )
            return Offer(accept=False)
        self._offered[job.id] = (job.room.name, time.monotonic())
        # the name clients (and livekit-agents' own) look for; the server adds only
        # its own spelling, `lk.agent_name`
        name = {AGENT_NAME_ATTRIBUTE: self.settings.agent_name}
        return Offer(accept=True, identity=f"agent-{job.id}", attributes=name)

    def assigned(self, job: agent.Job, url: str, token: str) -> None:
        offered = self._offered.pop(job.id, None)
        if job.id in self.rooms:
            return
        worker_id = self.link.worker_id if self.link else ""
        bot = BotInRoom(
            self.settings,
            self.store,
            job,
            worker_id=worker_id,
            liveness=self.liveness,
            joining=self._joining,
            offered_at=offered[1] if offered else None,
            mcp=self.mcp,
        )
        self.rooms[job.id] = bot
        task = supervise(bot.run(url, token), name=f"room {job.room.name}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda t: self._ended(job.id, t))

    def _ended(self, job_id: str, task: asyncio.Task[None]) -> None:
        self.rooms.pop(job_id, None)
        self._tasks.pop(job_id, None)
        if self.link is None:
            return
        failed = not task.cancelled() and task.exception() is not None
        status = agent.JobStatus.JS_FAILED if failed else agent.JobStatus.JS_SUCCESS
        self.link.job_status(job_id, status, "the bot crashed" if failed else "")
        self.link.report()

    def terminated(self, job_id: str) -> None:
        bot = self.rooms.get(job_id)
        if bot is not None:
            bot.leave("the job was terminated")

    def status(self) -> tuple[float, int, bool]:
        taken = self._taken()
        return self._load.of(taken), len(self.rooms), taken >= self.settings.max_rooms

    def running_ids(self) -> list[str]:
        return list(self.rooms)

    def handling(self) -> set[str]:
        """Rooms this worker runs or was just given (for the dispatch watchdog)."""
        self._taken()
        return {b.job.room.name for b in self.rooms.values()} | {
            room for room, _ in self._offered.values()
        }

    async def drain(self, lkapi: api.LiveKitAPI | None, timeout: float) -> None:
        """Hand every room over (`BotInRoom.hand_over`), all at once, bounded."""
        await asyncio.gather(*(b.hand_over(lkapi, timeout) for b in list(self.rooms.values())))

    async def aclose(
        self, grace: float = LEAVE_GRACE_S, cancel_grace: float = CANCEL_GRACE_S
    ) -> None:
        """Every bot leaves (each sender gets the turn.end of a running turn), within
        `grace`; a bot still running then is cancelled (logged with its step), and one
        that ignores that too is left behind after `cancel_grace`: the process exits."""
        for bot in list(self.rooms.values()):
            bot.leave("shutdown")
        tasks = dict(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks.values(), timeout=grace)
        if not pending:
            return
        for job_id, task in tasks.items():
            if task in pending:
                hung = self.rooms.get(job_id)
                log.warning(
                    "room %s: its bot did not leave within %gs (at: %s); cancelled",
                    hung.job.room.name if hung else job_id,
                    grace,
                    hung.step if hung else "?",
                )
                task.cancel()
        _, stuck = await asyncio.wait(pending, timeout=cancel_grace)
        if stuck:
            log.error("%d rooms' bots ignored their cancellation; exiting all the same", len(stuck))
