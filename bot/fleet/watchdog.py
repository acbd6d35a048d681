"""The dispatch watchdog: every room with people in it has a live bot, within seconds.

LiveKit dispatches a room to a worker once, when the room is created; it does not
retry a job that no worker took (`no servers available`, an availability answer that
came late), and a self-hosted server never re-dispatches a job whose worker died
(livekit/agents#1472). So where people are, the room asked for our agent (a dispatch
with our agent name: every room does under automatic dispatch) but no live bot of ours
is, the watchdog creates a dispatch through the server API; bots of a worker known to
be dead (`liveness`) are removed from the room first, so that clients find the new one.

It touches only the rooms that may need it. Every `BOT_WATCHDOG_INTERVAL` (`tick`):
the rooms of workers whose lease in the store ran out (each bot records its room
there, `Fleet.serve_room`), and rooms a LiveKit webhook pointed at (`wake`: a room
started, a person joined, a bot of ours left). Every `BOT_WATCHDOG_SCAN_INTERVAL`, a
slow reconciliation scan of every room (dispatches LiveKit never delivered, rooms
made before any worker ran, deployments without webhooks). One worker of the fleet
runs the tick and the scan at a time (the holder of the watchdog lease in the store,
`leases.py`); webhooks are checked by whichever worker receives them. Should two ever
overlap (a lease handed over mid-scan), dispatches are server state, and a room whose
dispatch is still on its way (recent, or with a job not yet joined) is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from livekit import api
from livekit.protocol.agent import JobState
from livekit.protocol.agent_dispatch import AgentDispatch
from livekit.protocol.models import ParticipantInfo

from ..protocol.attributes import WORKER_ATTRIBUTE, is_bot
from ..store.base import Fleet
from .leases import Liveness

log = logging.getLogger(__name__)

_CLIENT_KINDS = (ParticipantInfo.Kind.STANDARD, ParticipantInfo.Kind.SIP)
RETRY_S = 5.0  # a room the API failed on is looked at again this much later
RETRY_TRIES = 12  # ... at most this many times in a row


@dataclass(frozen=True)
class RoomPlan:
    """What the watchdog will do in one room."""

    room: str
    remove: list[str] = field(default_factory=list)  # identities of dead workers' bots
    dispatch: bool = False
    recheck_s: float = 0.0  # >0: no bot, but a dispatch may bring one; look again then


def plan_room(
    room: str,
    participants: Iterable[ParticipantInfo],
    dispatches: Iterable[AgentDispatch],
    *,
    agent_name: str,
    liveness: Callable[[str], Liveness],
    grace_s: float,
    now_ns: int,
    handling: bool = False,
) -> RoomPlan:
    """Decide from the server's view of one room (pure: unit-tested on its own).

    `handling`: this watchdog's own worker has accepted the room, or runs it: it is
    on its way, however slow (a burst on a small box), and never dispatched twice."""
    people = 0
    live_bots = 0
    dead: list[str] = []
    participants = list(participants)
    present = {p.identity for p in participants}
    for p in participants:
        if p.kind in _CLIENT_KINDS:
            people += 1
        elif p.kind == ParticipantInfo.Kind.AGENT and is_bot(p.attributes, agent_name):
            if liveness(p.attributes.get(WORKER_ATTRIBUTE, "")) == "dead":
                dead.append(p.identity)
            else:
                live_bots += 1
    dispatches = list(dispatches)
    # Rooms ask for the bot with a dispatch: LiveKit makes one named "" in every new
    # room (automatic dispatch) unless the room asked for named agents (explicit).
    wanted = any(d.agent_name == agent_name for d in dispatches)
    pending = any(_pending(d, agent_name, liveness, grace_s, now_ns, present) for d in dispatches)
    botless = wanted and people > 0 and not live_bots and not handling
    recheck = 0.0
    if botless and pending:  # when the youngest pending dispatch's grace is over
        ages = [
            (now_ns - d.state.created_at) / 1e9
            for d in dispatches
            if _pending(d, agent_name, liveness, grace_s, now_ns, present)
        ]
        recheck = max(0.1, grace_s - min(ages))
    return RoomPlan(room=room, remove=dead, dispatch=botless and not pending, recheck_s=recheck)


def _pending(
    d: AgentDispatch,
    agent_name: str,
    liveness: Callable[[str], Liveness],
    grace_s: float,
    now_ns: int,
    present: set[str],
) -> bool:
    """A dispatch of ours that may still bring a bot: younger than the grace, with a
    job still on its way (not ended, its bot not come and gone, its worker not known
    dead). (A dispatch no worker took has no job either, but so has one a busy worker
    has not answered yet: only time tells them apart.)"""
    if d.agent_name != agent_name or d.state.deleted_at:
        return False
    age_s = (now_ns - d.state.created_at) / 1e9
    if age_s >= grace_s:
        return False
    return not d.state.jobs or any(_on_its_way(j.state, liveness, present) for j in d.state.jobs)


def _on_its_way(job: JobState, liveness: Callable[[str], Liveness], present: set[str]) -> bool:
    if job.ended_at or liveness(job.worker_id) == "dead":
        return False
    # its bot joined once (LiveKit names it) and is gone again: it brings no other
    return not job.participant_identity or job.participant_identity in present


class DispatchWatchdog:
    def __init__(
        self,
        lkapi: api.LiveKitAPI,
        *,
        agent_name: str,
        liveness: Callable[[str], Liveness],
        grace_s: float,
        handling: Callable[[], set[str]] = set,
        fleet: Fleet | None = None,
        workers: Callable[[], Iterable[str]] = tuple,
        scan_every_s: float = 60.0,
        retry_s: float = RETRY_S,
    ) -> None:
        """`fleet`: where bots record their rooms; `workers`: every worker id the
        fleet's leases know (dead ones among them). A room the API fails on is looked at
        again `retry_s` later (RETRY_TRIES times at most), the others at once."""
        self._api = lkapi
        self._agent_name = agent_name
        self._liveness = liveness
        self._handling = handling  # rooms this worker has accepted or runs
        self._grace = grace_s
        self._fleet = fleet
        self._workers = workers
        self._scan_every = scan_every_s
        self._next_scan = 0.0  # the first scan as soon as this worker leads
        self._due: dict[str, float] = {}  # room -> when to look at it (webhooks)
        self._woken = asyncio.Event()
        self._retry_s = retry_s
        self._tries: dict[str, int] = {}  # room -> failed checks in a row
        self.dispatched = 0  # rooms given a bot by this watchdog (for logs and tests)

    def wake(self, room: str, after_s: float = 0.0) -> None:
        """Look at `room` in `after_s` (a webhook: a dispatch may still bring a bot)."""
        when = time.monotonic() + after_s
        self._due[room] = min(self._due.get(room, when), when)
        self._woken.set()

    async def tick(self) -> None:
        """The leader's round: dead workers' rooms, then the scan when it is due."""
        try:
            await self.recover()
            if time.monotonic() >= self._next_scan:
                self._next_scan = time.monotonic() + self._scan_every
                await self.scan()
        except Exception as e:  # the API unreachable for a moment must not end the loop
            log.warning("dispatch watchdog: %s", e)

    async def recover(self) -> None:
        """The rooms of every worker whose lease ran out; forgotten once seen to."""
        if self._fleet is None:
            return
        for worker in [w for w in self._workers() if self._liveness(w) == "dead"]:
            rooms = await self._fleet.rooms_of(worker)
            if rooms:
                log.info("dispatch watchdog: a worker died; looking at its %d rooms", len(rooms))
            for room in rooms:
                await self._check_or_retry(room)
            await self._fleet.forget_rooms(worker)

    async def _check_or_retry(self, room: str) -> None:
        """`check`, and when the API fails on this room, again later: one room the
        server cannot answer for (a 503 for a room closing) must not keep the others
        from their bot."""
        try:
            await self.check(room)
        except Exception as e:
            tries = self._tries[room] = self._tries.get(room, 0) + 1
            if tries >= RETRY_TRIES:
                del self._tries[room]
                log.warning("dispatch watchdog: room check failed %d times, left: %s", tries, e)
                return
            log.warning("dispatch watchdog: room check failed (%s); again in %gs", e, self._retry_s)
            self.wake(room, self._retry_s)
        else:
            self._tries.pop(room, None)

    async def run_woken(self) -> None:
        """Forever: look at each room a webhook pointed at, when it is due."""
        while True:
            now = time.monotonic()
            for room in [r for r, when in self._due.items() if when <= now]:
                del self._due[room]
                await self._check_or_retry(room)
            self._woken.clear()
            wait = min(self._due.values(), default=now + 3600) - time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, wait)):
                    await self._woken.wait()

    async def check(self, room: str) -> RoomPlan | None:
        """One room: remove dead bots, dispatch where people have no bot."""
        if room in self._handling():
            log.debug("dispatch watchdog: a room this worker serves: left alone")
            return None
        try:
            plan = await self._plan(room)
        except api.TwirpError as e:
            if e.code == "not_found":
                return None  # the room is gone: nobody to serve
            raise
        log.debug("dispatch watchdog: room checked: %s", plan)
        if plan.remove or plan.dispatch:
            await self._act(plan)
        if plan.recheck_s:
            self.wake(room, plan.recheck_s)
        return plan

    async def scan(self) -> list[RoomPlan]:
        rooms = await self._api.room.list_rooms(api.ListRoomsRequest())
        handling = self._handling()  # once per scan: it walks this worker's jobs
        plans: list[RoomPlan] = []
        for room in rooms.rooms:
            if room.num_participants == 0 or room.name in handling:
                continue
            try:
                plan = await self._plan(room.name)
                if plan.remove or plan.dispatch:
                    await self._act(plan)
                    plans.append(plan)
            except Exception as e:  # the next scan looks again; the other rooms now
                log.warning("dispatch watchdog: scan: a room failed: %s", e)
        return plans

    async def _plan(self, room: str) -> RoomPlan:
        listed = await self._api.room.list_participants(api.ListParticipantsRequest(room=room))
        dispatches = await self._api.agent_dispatch.list_dispatch(room)
        return plan_room(
            room,
            listed.participants,
            dispatches,
            agent_name=self._agent_name,
            liveness=self._liveness,
            grace_s=self._grace,
            now_ns=time.time_ns(),
        )

    async def _act(self, plan: RoomPlan) -> None:
        for identity in plan.remove:
            log.info("dispatch watchdog: removing a dead worker's bot from a room")
            try:
                await self._api.room.remove_participant(
                    api.RoomParticipantIdentity(room=plan.room, identity=identity)
                )
            except api.TwirpError as e:
                log.info("dispatch watchdog: bot already gone (%s)", e.code)
        if plan.dispatch:
            log.info("dispatch watchdog: a room has people but no bot; dispatching one")
            await self._api.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=self._agent_name, room=plan.room)
            )
            self.dispatched += 1
