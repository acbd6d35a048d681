"""The worker's side of LiveKit's agent protocol, against a scripted agent endpoint.

The real livekit-server is in the e2e suite; here each message of the protocol is
checked one by one: registration, availability answers (capacity, the agent-name
attribute), assignment, termination, load reports, and registering again with the
running jobs after the connection drops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import WSMsgType, web
from livekit.protocol import agent

from bot.config import Settings
from bot.store.memory import MemoryStore
from bot.worker.host import BotInRoom, RoomHost
from bot.worker.link import GaveUp, Offer, WorkerLink, agent_url

BOUND = 30.0  # bounds the test, never what is tested


@dataclass
class Endpoint:
    """A scripted `/agent` endpoint: records what the worker sends, sends what we say."""

    received: asyncio.Queue[agent.WorkerMessage] = field(default_factory=asyncio.Queue)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        assert request.headers["Authorization"].startswith("Bearer ")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for raw in ws:
            if raw.type != WSMsgType.BINARY:
                continue
            msg = agent.WorkerMessage()
            msg.ParseFromString(raw.data)
            if msg.HasField("register"):
                reply = agent.ServerMessage()
                reply.register.worker_id = f"AW_{len(self.sockets)}"
                await ws.send_bytes(reply.SerializeToString())
                self.connected.set()
            await self.received.put(msg)
        return ws

    async def send(self, msg: agent.ServerMessage) -> None:
        await self.sockets[-1].send_bytes(msg.SerializeToString())

    async def next(self, kind: str) -> agent.WorkerMessage:
        """The next message of this kind (others, such as load reports, skipped)."""

        async def find() -> agent.WorkerMessage:
            while True:
                msg = await self.received.get()
                if msg.WhichOneof("message") == kind:
                    return msg

        return await asyncio.wait_for(find(), BOUND)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    ep = Endpoint()
    app = web.Application()
    app.router.add_get("/agent", ep.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ep.url = f"ws://127.0.0.1:{port}"
    yield ep
    await runner.cleanup()


@dataclass
class Jobs:
    """A stand-in for the RoomHost: takes up to `room_for` rooms."""

    room_for: int = 1
    assigned_jobs: list[tuple[str, str, str]] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    ended_one: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, job: agent.Job) -> Offer:
        if len(self.assigned_jobs) >= self.room_for:
            return Offer(accept=False)
        return Offer(accept=True, identity=f"agent-{job.id}", attributes={"k": "v"})

    def assigned(self, job: agent.Job, url: str, token: str) -> None:
        self.assigned_jobs.append((job.id, url, token))

    def terminated(self, job_id: str) -> None:
        self.ended.append(job_id)
        self.ended_one.set()

    def status(self) -> tuple[float, int, bool]:
        n = len(self.assigned_jobs)
        return n / self.room_for * 0.7, n, n >= self.room_for

    def running_ids(self) -> list[str]:
        return [j for j, _, _ in self.assigned_jobs]


def availability(job_id: str) -> agent.ServerMessage:
    msg = agent.ServerMessage()
    msg.availability.job.id = job_id
    msg.availability.job.room.name = f"room-{job_id}"
    return msg


def assignment(job_id: str, url: str = "") -> agent.ServerMessage:
    msg = agent.ServerMessage()
    msg.assignment.job.id = job_id
    msg.assignment.job.room.name = f"room-{job_id}"
    msg.assignment.token = "tok"
    msg.assignment.url = url
    return msg


@contextlib.asynccontextmanager
async def running(link: WorkerLink) -> AsyncIterator[None]:
    task = asyncio.create_task(link.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def make_link(endpoint: Endpoint, jobs: Jobs, registered: list[str] | None = None) -> WorkerLink:
    return WorkerLink(
        jobs,
        url=endpoint.url,
        api_key="devkey",
        api_secret="a-test-secret-of-at-least-32-bytes!",
        agent_name="helper",
        on_registered=(registered if registered is not None else []).append,
    )


def test_the_agent_url_is_next_to_the_livekit_url() -> None:
    assert agent_url("ws://h:7880") == "ws://h:7880/agent"
    assert agent_url("https://lk.example.com/base/") == "wss://lk.example.com/base/agent"


async def test_registers_answers_a_room_and_reports_its_load(endpoint: Endpoint) -> None:
    jobs = Jobs(room_for=1)
    registered: list[str] = []
    link = make_link(endpoint, jobs, registered)
    async with running(link):
        reg = (await endpoint.next("register")).register
        assert reg.type == agent.JobType.JT_ROOM and reg.agent_name == "helper"
        assert reg.allowed_permissions.can_publish_data and reg.allowed_permissions.agent
        first = (await endpoint.next("update_worker")).update_worker
        assert first.status == agent.WorkerStatus.WS_AVAILABLE and first.load == 0
        assert registered == ["AW_1"]

        await endpoint.send(availability("J1"))
        answer = (await endpoint.next("availability")).availability
        assert answer.job_id == "J1" and answer.available
        assert answer.participant_identity == "agent-J1"
        assert dict(answer.participant_attributes) == {"k": "v"}

        await endpoint.send(assignment("J1"))
        running_update = (await endpoint.next("update_job")).update_job
        assert running_update.job_id == "J1" and running_update.status == agent.JobStatus.JS_RUNNING
        assert jobs.assigned_jobs == [("J1", endpoint.url, "tok")]  # no url given: ours
        full = (await endpoint.next("update_worker")).update_worker
        assert full.status == agent.WorkerStatus.WS_FULL and full.job_count == 1
        assert full.load == pytest.approx(0.7)

        await endpoint.send(availability("J2"))  # at capacity
        refused = (await endpoint.next("availability")).availability
        assert refused.job_id == "J2" and not refused.available

        term = agent.ServerMessage()
        term.termination.job_id = "J1"
        await endpoint.send(term)
        await asyncio.wait_for(jobs.ended_one.wait(), BOUND)
        assert jobs.ended == ["J1"]


async def test_a_draining_worker_refuses_rooms(endpoint: Endpoint) -> None:
    link = make_link(endpoint, Jobs(room_for=5))
    async with running(link):
        await endpoint.next("register")
        await endpoint.next("update_worker")  # registered: the first report
        link.drain()
        assert (await endpoint.next("update_worker")).update_worker.status == (
            agent.WorkerStatus.WS_FULL
        )
        await endpoint.send(availability("J9"))
        assert not (await endpoint.next("availability")).availability.available


async def test_after_a_drop_it_registers_again_and_reports_its_running_jobs(
    endpoint: Endpoint,
) -> None:
    jobs = Jobs(room_for=3)
    registered: list[str] = []
    link = make_link(endpoint, jobs, registered)
    async with running(link):
        await endpoint.next("register")
        await endpoint.send(availability("J1"))
        await endpoint.next("availability")
        await endpoint.send(assignment("J1", url="ws://elsewhere"))
        await endpoint.next("update_job")
        assert jobs.assigned_jobs[0][1] == "ws://elsewhere"
        await endpoint.sockets[-1].close()  # livekit-server restarts
        await endpoint.next("register")
        migrate = (await endpoint.next("migrate_job")).migrate_job
        assert list(migrate.job_ids) == ["J1"]
        assert registered == ["AW_1", "AW_2"]


async def test_a_job_status_made_while_unregistered_is_delivered_once_registered(
    endpoint: Endpoint,
) -> None:
    """A room that ends while the link is down (a livekit-server restart) is still
    reported: one queue and one sender outlive the connection (was: dropped)."""
    link = make_link(endpoint, Jobs(room_for=3))
    link.job_status("J7", agent.JobStatus.JS_SUCCESS)  # before any connection
    async with running(link):
        await endpoint.next("register")
        update = (await endpoint.next("update_job")).update_job
        assert (update.job_id, update.status) == ("J7", agent.JobStatus.JS_SUCCESS)


async def test_the_link_gives_up_after_its_tries_and_says_why() -> None:
    """A server gone for good (or a revoked key) ends `run()` with an error, so the
    worker exits non-zero for its supervisor, instead of retrying forever."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens there now
    link = WorkerLink(
        Jobs(),
        url=f"ws://127.0.0.1:{port}",
        api_key="devkey",
        api_secret="a-test-secret-of-at-least-32-bytes!",
        agent_name="",
        max_tries=3,
    )
    assert link.ready()  # just started: not yet unready
    with pytest.raises(GaveUp, match="3 times in a row"):
        await asyncio.wait_for(link.run(), BOUND)
    assert not link.ready(grace_s=0)


def test_the_host_takes_rooms_up_to_its_capacity_counting_rooms_on_their_way() -> None:
    host = RoomHost(
        Settings(max_rooms=2, agent_name="helper"), MemoryStore(), liveness=lambda _: "alive"
    )
    one, two, three = (availability(j).availability.job for j in ("A", "B", "C"))
    first = host.offer(one)
    assert first.accept and first.identity == "agent-A"
    assert first.attributes == {"lk.agent.name": "helper"}  # what clients look for
    assert host.offer(two).accept
    # two accepted, none assigned yet: both count, a third is refused
    assert not host.offer(three).accept
    load, running_rooms, full = host.status()
    assert (running_rooms, full) == (0, True) and load == pytest.approx(0.7)
    assert host.handling() == {"room-A", "room-B"}


async def test_shutting_down_cancels_a_bot_that_does_not_leave_and_says_where_it_hung(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bot stuck while leaving (e.g. in the SDK's disconnect) must not keep the worker
    from exiting after SIGTERM: past the grace it is cancelled, and the log says where."""
    cancelled = asyncio.Event()

    async def stuck(self: BotInRoom, url: str, token: str) -> None:
        self.step = "leaving: disconnecting"
        try:
            await asyncio.Event().wait()  # never
        except asyncio.CancelledError:
            cancelled.set()
            raise

    monkeypatch.setattr(BotInRoom, "run", stuck)
    host = RoomHost(Settings(), MemoryStore(), liveness=lambda _: "alive")
    host.assigned(availability("A").availability.job, "ws://lk", "token")
    await asyncio.sleep(0)  # the bot's task starts
    with caplog.at_level(logging.WARNING, "bot"):
        await asyncio.wait_for(host.aclose(grace=0.05, cancel_grace=BOUND), BOUND)
    assert cancelled.is_set() and host.rooms == {}
    assert "room-A: its bot did not leave within 0.05s (at: leaving: disconnecting)" in caplog.text
