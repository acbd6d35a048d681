"""The dispatch watchdog's decisions, worker leases and the capacity load."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from livekit import api
from livekit.protocol.agent import Job, JobState
from livekit.protocol.agent_dispatch import AgentDispatch, AgentDispatchState
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.room import (
    ListParticipantsRequest,
    ListParticipantsResponse,
    ListRoomsResponse,
)

from bot.fleet.leases import WorkerLeases
from bot.fleet.watchdog import DispatchWatchdog, plan_room
from bot.store import MemoryStore
from bot.worker.capacity import RoomLoad

NOW = 1_000 * 10**9  # ns
Kind = ParticipantInfo.Kind


def person(identity: str = "alice") -> ParticipantInfo:
    return ParticipantInfo(identity=identity, kind=Kind.STANDARD)


def bot(worker: str = "AW_1", name: str = "", identity: str = "agent-1") -> ParticipantInfo:
    attrs = {"lkbot.protocol": "1", "lkbot.worker": worker, "lk.agent.name": name}
    return ParticipantInfo(identity=identity, kind=Kind.AGENT, attributes=attrs)


def dispatch(age_s: float, *, jobs: int = 0, name: str = "", worker: str = "AW_1") -> AgentDispatch:
    made = [Job(id=f"J{i}", state=JobState(worker_id=worker)) for i in range(jobs)]
    state = AgentDispatchState(created_at=NOW - int(age_s * 1e9), jobs=made)
    return AgentDispatch(id="AD_1", agent_name=name, room="r", state=state)


def plan(participants: list[ParticipantInfo], dispatches: list[AgentDispatch], **kw: object):  # type: ignore[no-untyped-def]
    states = kw.pop("states", {})
    assert isinstance(states, dict)
    return plan_room(
        "r",
        participants,
        dispatches,
        agent_name=str(kw.pop("agent_name", "")),
        liveness=lambda w: states.get(w, "unknown"),
        grace_s=15.0,
        now_ns=NOW,
    )


ASKED = dispatch(60, jobs=1)  # the room's own dispatch, long ago: its job is gone


def test_people_and_no_bot_get_one() -> None:
    assert plan([person()], [ASKED]).dispatch
    assert plan([person()], [dispatch(60)]).dispatch  # no worker took it (created early)
    assert not plan([], [ASKED]).dispatch  # an empty room needs nobody
    assert not plan([bot()], [ASKED]).dispatch  # nor one with only the bot
    assert not plan([person()], []).dispatch  # a room that never asked for this agent


def test_a_live_or_unknown_bot_is_left_alone() -> None:
    assert not plan([person(), bot("AW_1")], [ASKED], states={"AW_1": "alive"}).dispatch
    # a worker the store never heard of (another fleet) is presumed alive: never a second bot
    unknown = plan([person(), bot("AW_9")], [ASKED])
    assert not unknown.dispatch and not unknown.remove


def test_a_dead_workers_bot_is_removed_and_replaced() -> None:
    p = plan([person(), bot("AW_1", identity="agent-old")], [ASKED], states={"AW_1": "dead"})
    assert p.remove == ["agent-old"] and p.dispatch


def test_a_dispatch_on_its_way_is_waited_for() -> None:
    assert not plan([person()], [ASKED, dispatch(1)]).dispatch  # just made: no job yet
    assert not plan([person()], [ASKED, dispatch(10)]).dispatch  # a busy worker: wait
    assert not plan([person()], [ASKED, dispatch(10, jobs=1)]).dispatch  # assigned, joining
    assert plan([person()], [ASKED, dispatch(16)]).dispatch  # nobody took it in time
    assert plan([person()], [ASKED, dispatch(20, jobs=1)]).dispatch  # assigned, never came
    # assigned to a worker that has died (or stopped) since: not on its way any more
    dead = {"AW_1": "dead"}
    assert plan([person()], [ASKED, dispatch(10, jobs=1)], states=dead).dispatch


def test_a_room_our_worker_handles_is_never_dispatched_twice() -> None:
    """However slow (a 50-room burst on 2 cores), a room this worker accepted is coming:
    dispatching it again only adds work and a second bot."""
    p = plan_room(
        "r",
        [person()],
        [dispatch(60)],
        agent_name="",
        liveness=lambda w: "unknown",
        grace_s=15.0,
        now_ns=NOW,
        handling=True,
    )
    assert not p.dispatch


def test_only_our_agent_name_counts() -> None:
    other_agent = bot(name="someone-else")
    assert plan([person(), other_agent], [ASKED], agent_name="").dispatch
    named = dispatch(60, jobs=1, name="named")
    assert not plan([person(), bot(name="named")], [named], agent_name="named").dispatch
    assert plan([person()], [named, dispatch(1, name="other")], agent_name="named").dispatch
    assert not plan([person()], [ASKED], agent_name="named").dispatch  # did not ask for it
    not_lkbot = ParticipantInfo(identity="a", kind=Kind.AGENT, attributes={"lk.agent.name": ""})
    assert plan([person(), not_lkbot], [ASKED]).dispatch


async def test_worker_leases_know_dead_from_unknown() -> None:
    """Liveness comes from leases in the store, shared by every machine that shares
    it: no files, no pids. Never heard of: unknown (presumed alive, never removed)."""
    store = MemoryStore()
    mine = WorkerLeases(store, ttl_s=60)
    other = WorkerLeases(store, ttl_s=60)  # another process, or another machine
    assert mine.state("AW_x") == "unknown"
    mine.add("AW_me")
    other.add("AW_other")
    await mine.renew()
    await other.renew()
    assert other.state("AW_me") == "alive"
    assert other.state("AW_x") == "unknown"
    await mine.aclose()  # stopped cleanly: retired, dead at once for everyone
    assert other.state("AW_me") == "alive"  # until it reads the store again
    await other.renew()
    assert other.state("AW_me") == "dead"
    await other.aclose()


async def test_a_worker_that_stops_renewing_is_dead_when_its_lease_runs_out() -> None:
    store = MemoryStore()
    await store.beat("AW_hung", 2000)  # its last renewal, then nothing (kill -9)
    watcher = WorkerLeases(store, ttl_s=60)
    watcher.add("AW_watcher")
    await watcher.renew()
    assert watcher.state("AW_hung") == "alive"
    watcher._read_at -= 2.5  # the snapshot ages; no waiting on the clock here
    assert watcher.state("AW_hung") == "dead"
    assert watcher.state("AW_watcher") == "alive"
    watcher._read_at -= 30  # the store not read for over half the TTL (it is away)
    assert watcher.state("AW_hung") == "unknown"  # no one taken for dead on old news
    await watcher.aclose()


async def test_one_process_of_the_fleet_leads_the_watchdog() -> None:
    store = MemoryStore()
    scans: list[str] = []
    enough = asyncio.Event()

    def scanner(name: str) -> Callable[[], Awaitable[None]]:
        async def scan() -> None:
            scans.append(name)
            if scans.count("a") >= 20:
                enough.set()

        return scan

    fast = {"lead_every_s": 0.01, "lead_ttl_s": 60.0}  # a holds it for the whole test
    a = WorkerLeases(store, ttl_s=60, role="w", owner="a", on_lead=scanner("a"), **fast)
    b = WorkerLeases(store, ttl_s=60, role="w", owner="b", on_lead=scanner("b"), **fast)
    a.add("AW_a")
    await asyncio.wait_for(enough.wait(), 30)
    b.add("AW_b")
    enough.clear()
    scans.clear()
    await asyncio.wait_for(enough.wait(), 30)  # a led 20 more times, b stood by
    assert "b" not in scans and a.leading and not b.leading
    await a.aclose()
    await b.aclose()


def test_load_means_capacity_at_the_servers_threshold() -> None:
    load = RoomLoad(max_rooms=50, target_load=0.7)
    assert load.of(0) == 0
    assert load.of(49) < 0.7 <= load.of(50)  # the server sends rooms until exactly 50
    assert load.of(500) == 0.7


class FakeAPI:
    """The server API the watchdog uses, over a table of rooms; counts every call."""

    def __init__(self, rooms: dict[str, list[ParticipantInfo]]) -> None:
        self.rooms = rooms
        self.calls: list[str] = []
        self.room = self
        self.agent_dispatch = self
        self.dispatched: list[str] = []
        self.removed: list[str] = []
        self.failing: set[str] = set()
        self.acted = asyncio.Event()

    async def list_rooms(self, _req: object) -> object:
        self.calls.append("ListRooms")
        listed = [Room(name=n, num_participants=len(p)) for n, p in self.rooms.items()]
        return ListRoomsResponse(rooms=listed)

    async def list_participants(self, req: ListParticipantsRequest) -> object:
        self.calls.append("ListParticipants")
        if req.room in self.failing:
            # what livekit-server answered for a closing room in the kit's example suite
            raise api.TwirpError("unavailable", "no response from servers", status=503)
        if req.room not in self.rooms:
            raise api.TwirpError("not_found", "room not found", status=404)
        return ListParticipantsResponse(participants=self.rooms[req.room])

    async def list_dispatch(self, room: str) -> list[AgentDispatch]:
        self.calls.append("ListDispatch")
        return [ASKED]

    async def remove_participant(self, req: api.RoomParticipantIdentity) -> None:
        self.calls.append("RemoveParticipant")
        self.removed.append(req.identity)

    async def create_dispatch(self, req: api.CreateAgentDispatchRequest) -> None:
        self.calls.append("CreateDispatch")
        self.dispatched.append(req.room)
        self.acted.set()


async def test_a_dead_workers_rooms_are_all_the_watchdog_looks_at() -> None:
    """Recovery costs API calls for the rooms that need it, whatever else the LiveKit
    project holds (200 rooms here): was one ListRooms and two calls per room per scan,
    in every worker process."""
    rooms = {f"busy{i}": [person(), bot("AW_alive", identity=f"agent-{i}")] for i in range(200)}
    rooms["orphan"] = [person(), bot("AW_dead", identity="agent-dead")]
    fake = FakeAPI(rooms)
    store = MemoryStore()
    await store.serve_room("orphan", "AW_dead")
    await store.serve_room("closed", "AW_dead")  # a room that is gone since
    await store.serve_room("busy1", "AW_alive")
    states = {"AW_dead": "dead", "AW_alive": "alive"}
    watchdog = DispatchWatchdog(
        fake,  # type: ignore[arg-type]
        agent_name="",
        liveness=lambda w: states.get(w, "unknown"),  # type: ignore[arg-type,return-value]
        grace_s=15.0,
        fleet=store,
        workers=lambda: list(states),
    )
    await watchdog.recover()
    assert fake.removed == ["agent-dead"] and fake.dispatched == ["orphan"]
    assert "ListRooms" not in fake.calls and len(fake.calls) == 5  # 2 + 1 + remove + dispatch
    assert await store.rooms_of("AW_dead") == []  # seen to: not looked at again
    fake.calls.clear()
    await watchdog.recover()
    assert fake.calls == []


async def test_a_room_the_api_fails_on_does_not_keep_the_others_from_a_bot() -> None:
    """A dead worker's rooms: one of them the server cannot answer for (503). The
    others still get their bot at once, and the failed one is looked at again later
    (it was: the first failure ended the round, the next round failed on the same room
    first, and a user in a later room never got a bot back)."""
    fake = FakeAPI({"bad": [person()], "good": [person(), bot("AW_dead")]})
    fake.failing.add("bad")
    store = MemoryStore()
    await store.serve_room("bad", "AW_dead")
    await store.serve_room("good", "AW_dead")
    watchdog = DispatchWatchdog(
        fake,  # type: ignore[arg-type]
        agent_name="",
        liveness=lambda w: "dead" if w == "AW_dead" else "unknown",  # type: ignore[arg-type,return-value]
        grace_s=15.0,
        fleet=store,
        workers=lambda: ["AW_dead"],
        retry_s=0.05,
    )
    await watchdog.recover()
    assert fake.dispatched == ["good"]
    assert await store.rooms_of("AW_dead") == []
    fake.failing.clear()  # the server answers for it again
    fake.acted.clear()
    task = asyncio.create_task(watchdog.run_woken())
    try:
        await asyncio.wait_for(fake.acted.wait(), 30)  # bounds the test
        assert fake.dispatched == ["good", "bad"]
    finally:
        task.cancel()
    # the periodic scan, likewise: a room that fails is passed over, not the round
    fake = FakeAPI({"bad": [person()], "good": [person()]})
    fake.failing.add("bad")
    scanner = DispatchWatchdog(fake, agent_name="", liveness=lambda w: "unknown", grace_s=15.0)  # type: ignore[arg-type]
    await scanner.scan()
    assert fake.dispatched == ["good"]


async def test_a_webhook_wakes_the_watchdog_for_one_room() -> None:
    fake = FakeAPI({"r": [person()], "other": [person()]})
    watchdog = DispatchWatchdog(
        fake,  # type: ignore[arg-type]
        agent_name="",
        liveness=lambda w: "unknown",
        grace_s=15.0,
    )
    task = asyncio.create_task(watchdog.run_woken())
    try:
        watchdog.wake("r")
        await asyncio.wait_for(fake.acted.wait(), 10)
        assert fake.dispatched == ["r"] and "ListRooms" not in fake.calls
    finally:
        task.cancel()


def test_a_young_dispatch_whose_bot_came_and_went_brings_no_other() -> None:
    """A bot removed (or crashed) seconds after its room was made: its dispatch is
    young, but its job's bot has been and gone, so nothing else is on its way."""
    gone = dispatch(1, jobs=1)
    gone.state.jobs[0].state.participant_identity = "agent-1"
    assert plan([person()], [gone]).dispatch  # agent-1 is no longer in the room
    assert not plan([person(), bot()], [gone]).dispatch  # it is here
    ended = dispatch(1, jobs=1)
    ended.state.jobs[0].state.ended_at = NOW
    assert plan([person()], [ended]).dispatch
    on_its_way = dispatch(1, jobs=1)  # assigned, its bot not joined yet
    assert not plan([person()], [on_its_way]).dispatch


def test_a_room_waiting_on_a_young_dispatch_is_looked_at_again_when_it_is_due() -> None:
    young = dispatch(5)  # no job seen yet: may still bring a bot, for 10 s more
    p = plan([person()], [young])
    assert not p.dispatch and p.recheck_s == 10.0
    assert plan([person(), bot()], [young]).recheck_s == 0  # it has its bot
