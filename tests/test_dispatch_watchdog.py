"""The dispatch watchdog's decisions, worker leases and the capacity load."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from livekit.protocol.agent import Job, JobState
from livekit.protocol.agent_dispatch import AgentDispatch, AgentDispatchState
from livekit.protocol.models import ParticipantInfo

from bot.fleet.leases import WorkerLeases
from bot.fleet.watchdog import plan_room
from bot.room.capacity import RoomLoad
from bot.store import MemoryStore

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
    # another machine's worker (no heartbeat here) is presumed alive: never a second bot
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
    hung = WorkerLeases(store, ttl_s=2)
    await store.beat("AW_hung", 2000)  # its last renewal, then nothing (kill -9)
    watcher = WorkerLeases(store, ttl_s=60)
    watcher.add("AW_watcher")
    await watcher.renew()
    assert watcher.state("AW_hung") == "alive"
    watcher._read_at -= 2.5  # the snapshot ages; no waiting on the clock here
    assert watcher.state("AW_hung") == "dead"
    await watcher.aclose()
    await hung.aclose()


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
