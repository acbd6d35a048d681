"""The dispatch watchdog: every room with people in it has a live bot, within seconds.

LiveKit dispatches a room to a worker once, when the room is created; it does not
retry a job that no worker took (`no servers available`, an availability answer that
came late), and a self-hosted server never re-dispatches a job whose worker died
(livekit/agents#1472). So each worker runs this loop: list the rooms, and where people
are, the room asked for our agent (a dispatch with our agent name: every room does
under automatic dispatch) but no live bot of ours is, create a dispatch through the
server API. Bots of a
worker known to be dead (`liveness`) are removed from the room first, so that clients
find the new one.

One worker of the fleet runs it at a time (the holder of the watchdog lease in the
store, `leases.py`). Should two ever overlap (a lease handed over mid-scan),
dispatches are server state, and a room whose dispatch is still on its way (recent,
or with a job not yet joined) is left alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from livekit import api
from livekit.protocol.agent_dispatch import AgentDispatch
from livekit.protocol.models import ParticipantInfo

from ..protocol.attributes import WORKER_ATTRIBUTE, is_bot
from .leases import Liveness

log = logging.getLogger(__name__)

_CLIENT_KINDS = (ParticipantInfo.Kind.STANDARD, ParticipantInfo.Kind.SIP)


@dataclass(frozen=True)
class RoomPlan:
    """What the watchdog will do in one room."""

    room: str
    remove: list[str] = field(default_factory=list)  # identities of dead workers' bots
    dispatch: bool = False


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
    pending = any(_pending(d, agent_name, liveness, grace_s, now_ns) for d in dispatches)
    need = wanted and people > 0 and not live_bots and not pending and not handling
    return RoomPlan(room=room, remove=dead, dispatch=need)


def _pending(
    d: AgentDispatch,
    agent_name: str,
    liveness: Callable[[str], Liveness],
    grace_s: float,
    now_ns: int,
) -> bool:
    """A dispatch of ours that may still bring a bot: younger than the grace, and not
    assigned only to workers known dead. (A dispatch no worker took has no job either,
    but so has one a busy worker has not answered yet: only time tells them apart.)"""
    if d.agent_name != agent_name or d.state.deleted_at:
        return False
    age_s = (now_ns - d.state.created_at) / 1e9
    if age_s >= grace_s:
        return False
    return not d.state.jobs or any(liveness(j.state.worker_id) != "dead" for j in d.state.jobs)


class DispatchWatchdog:
    def __init__(
        self,
        lkapi: api.LiveKitAPI,
        *,
        agent_name: str,
        liveness: Callable[[str], Liveness],
        grace_s: float,
        handling: Callable[[], set[str]] = set,
    ) -> None:
        self._api = lkapi
        self._agent_name = agent_name
        self._liveness = liveness
        self._handling = handling  # rooms this worker has accepted or runs
        self._grace = grace_s
        self.dispatched = 0  # rooms given a bot by this watchdog (for logs and tests)

    async def scan_logged(self) -> None:
        """One scan; a failed one (the server restarting) is logged, the next retries."""
        try:
            await self.scan()
        except Exception as e:  # the API unreachable for a moment must not end the loop
            log.warning("dispatch watchdog: scan failed: %s", e)

    async def scan(self) -> list[RoomPlan]:
        rooms = await self._api.room.list_rooms(api.ListRoomsRequest())
        handling = self._handling()  # once per scan: it walks this worker's jobs
        plans: list[RoomPlan] = []
        for room in rooms.rooms:
            if room.num_participants == 0 or room.name in handling:
                continue
            plan = await self._plan(room.name)
            if plan.remove or plan.dispatch:
                await self._act(plan)
                plans.append(plan)
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
