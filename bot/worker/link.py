"""The worker's link to livekit-server: LiveKit's agent worker protocol, spoken directly.

One WebSocket to `<livekit url>/agent` (a token with the `agent` grant), protobuf
messages from `livekit.protocol.agent`:

- we register (`RegisterWorkerRequest`, room jobs, our agent name) and get a worker id;
- the server offers each new room (`AvailabilityRequest`) and waits 10 s at most for the
  answer: it is given at once, from the receiving loop, by `Jobs.offer`;
- an accepted room comes back as a `JobAssignment` with the bot's token;
  `JobTermination` ends one (a `DeleteDispatch`, or the room closing);
- every `STATUS_EVERY_S` and on every change we report our load and job count
  (`UpdateWorkerStatus`): livekit-server sends rooms only to workers whose load is
  under `agents.target_load`.

Everything the worker sends goes through one bounded queue and one sender task, both
outliving the connection (as livekit-agents' worker does): a job status update made
while the link is down is delivered after it registers again, in order, and a send
that fails is logged, never lost silently. Load reports are not queued: each
registration reports the load afresh.

When the connection drops (a livekit-server restart) the link registers again, with
backoff, and the rooms keep running: their own connections reconnect by themselves.
After `MAX_TRIES` failed registrations in a row (a server gone for good, a revoked
key) `run()` raises: the worker exits non-zero so that its supervisor restarts it or
an operator looks, instead of a worker that answers its health check and serves
nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse

import aiohttp
from livekit import api
from livekit.protocol import agent, models

from .. import __version__
from ..tasks import supervise

log = logging.getLogger(__name__)

STATUS_EVERY_S = 2.5
HEARTBEAT_S = 30.0
MAX_BACKOFF_S = 10.0
MAX_TRIES = 16  # failed registrations in a row before the link gives up (livekit-agents: 16)
READY_GRACE_S = 15.0  # unregistered this long: not ready (GET /ready answers 503)
QUEUE_MAX = 1000  # messages waiting for a connection; past it the oldest are dropped (logged)


class GaveUp(ConnectionError):
    """The link could not register `MAX_TRIES` times in a row."""


@dataclass(frozen=True)
class Offer:
    """Our answer to a room: take it (as `identity`, with these attributes) or not."""

    accept: bool
    identity: str = ""
    name: str = ""
    attributes: dict[str, str] | None = None


class Jobs(Protocol):
    """What the link asks of the rooms' side (the RoomHost)."""

    def offer(self, job: agent.Job) -> Offer: ...
    def assigned(self, job: agent.Job, url: str, token: str) -> None: ...
    def terminated(self, job_id: str) -> None: ...
    def status(self) -> tuple[float, int, bool]:
        """(load 0..1, running job count, full)"""
        ...

    def running_ids(self) -> list[str]: ...


def agent_url(livekit_url: str) -> str:
    parsed = urlparse(livekit_url)
    scheme = (
        parsed.scheme.replace("http", "ws") if parsed.scheme.startswith("http") else parsed.scheme
    )
    return f"{scheme}://{parsed.netloc}{parsed.path}".rstrip("/") + "/agent"


class WorkerLink:
    def __init__(
        self,
        jobs: Jobs,
        *,
        url: str,
        api_key: str,
        api_secret: str,
        agent_name: str,
        on_registered: Callable[[str], None] = lambda _id: None,
        max_tries: int = MAX_TRIES,
    ) -> None:
        self._jobs = jobs
        self._url = url
        self._key = api_key
        self._secret = api_secret
        self._agent_name = agent_name
        self._on_registered = on_registered
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._draining = False
        self._last_status: tuple[float, int, bool, bool] | None = None
        self._failures = 0
        self._max_tries = max_tries
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_MAX)
        self._connected = asyncio.Event()
        self.worker_id = ""
        self.registered_at: float | None = None  # monotonic; None while unregistered
        self._lost_at = time.monotonic()  # when it was last unregistered

    # -- sending ------------------------------------------------------------------

    def _send(self, msg: agent.WorkerMessage) -> None:
        """Queue a message for the sender task (kept across reconnects)."""
        if self._outbox.full():
            self._outbox.get_nowait()
            log.warning("worker link: %d messages waiting; the oldest dropped", QUEUE_MAX)
        self._outbox.put_nowait(msg.SerializeToString())

    async def _sender(self) -> None:
        """The one task that writes to the socket, in queue order; a message whose
        write fails waits for the next connection."""
        pending: bytes | None = None
        while True:
            if pending is None:
                pending = await self._outbox.get()
            await self._connected.wait()
            ws = self._ws
            if ws is None or ws.closed:
                self._connected.clear()
                continue
            try:
                await ws.send_bytes(pending)
                pending = None
            except (ConnectionError, RuntimeError, aiohttp.ClientError) as e:
                log.info("worker link: send failed (%s); kept for the next connection", e)
                self._connected.clear()

    def job_status(self, job_id: str, status: agent.JobStatus, error: str = "") -> None:
        self._send(
            agent.WorkerMessage(
                update_job=agent.UpdateJobStatus(job_id=job_id, status=status, error=error)
            )
        )

    def report(self, *, force: bool = False) -> None:
        """Tell the server our load (only when it changed, unless forced)."""
        load, count, full = self._jobs.status()
        now = (round(load, 4), count, full, self._draining)
        if now == self._last_status and not force:
            return
        self._last_status = now
        status = (
            agent.WorkerStatus.WS_FULL
            if full or self._draining
            else agent.WorkerStatus.WS_AVAILABLE
        )
        if self._ws is None:
            return  # registering reports it afresh
        self._send(
            agent.WorkerMessage(
                update_worker=agent.UpdateWorkerStatus(status=status, load=load, job_count=count)
            )
        )

    def drain(self) -> None:
        """Take no more rooms (shutdown): the server stops offering them."""
        self._draining = True
        self.report(force=True)

    def ready(self, grace_s: float = READY_GRACE_S) -> bool:
        """Registered, or unregistered for less than `grace_s` (a reconnect)."""
        return self.registered_at is not None or time.monotonic() - self._lost_at < grace_s

    # -- receiving ----------------------------------------------------------------

    def _handle(self, msg: agent.ServerMessage) -> None:
        which = msg.WhichOneof("message")
        if which == "availability":
            job = msg.availability.job
            offer = Offer(accept=False) if self._draining else self._jobs.offer(job)
            answer = agent.AvailabilityResponse(job_id=job.id, available=offer.accept)
            if offer.accept:
                answer.participant_identity = offer.identity
                answer.participant_name = offer.name
                answer.participant_attributes.update(offer.attributes or {})
            self._send(agent.WorkerMessage(availability=answer))
            self.report()
        elif which == "assignment":
            a = msg.assignment
            self._jobs.assigned(a.job, a.url or self._url, a.token)
            self.job_status(a.job.id, agent.JobStatus.JS_RUNNING)
            self.report()
        elif which == "termination":
            self._jobs.terminated(msg.termination.job_id)

    async def _session(self, http: aiohttp.ClientSession) -> None:
        token = api.AccessToken(self._key, self._secret).with_grants(api.VideoGrants(agent=True))
        headers = {"Authorization": f"Bearer {token.to_jwt()}"}
        async with http.ws_connect(
            agent_url(self._url), headers=headers, heartbeat=HEARTBEAT_S
        ) as ws:
            register = agent.WorkerMessage()
            register.register.type = agent.JobType.JT_ROOM
            register.register.agent_name = self._agent_name
            register.register.version = __version__
            register.register.allowed_permissions.CopyFrom(
                models.ParticipantPermission(
                    can_publish=False,  # a text bot publishes no media
                    can_subscribe=True,
                    can_publish_data=True,
                    can_update_metadata=True,
                    agent=True,
                )
            )
            await ws.send_bytes(register.SerializeToString())
            first = agent.ServerMessage()
            first.ParseFromString(await ws.receive_bytes())
            if not first.HasField("register"):
                raise ConnectionError("livekit-server did not answer the registration")
            self._ws = ws
            self._failures = 0
            self.worker_id = first.register.worker_id
            self.registered_at = time.monotonic()
            running = self._jobs.running_ids()
            if running:  # rooms that outlived the previous connection: sent first
                migrate = agent.WorkerMessage(migrate_job=agent.MigrateJobRequest(job_ids=running))
                await ws.send_bytes(migrate.SerializeToString())
            self._last_status = None
            self._connected.set()
            self.report(force=True)
            self._on_registered(self.worker_id)
            status = supervise(self._status_loop(), name="worker status")
            try:
                async for raw in ws:
                    if raw.type != aiohttp.WSMsgType.BINARY:
                        continue
                    msg = agent.ServerMessage()
                    msg.ParseFromString(raw.data)
                    self._handle(msg)
            finally:
                self._ws = None
                self.registered_at = None
                self._lost_at = time.monotonic()
                self._connected.clear()
                status.cancel()
        raise ConnectionError(f"livekit-server closed the worker connection ({ws.close_code})")

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            self.report(force=True)

    async def run(self) -> None:
        """Stay registered until cancelled; reconnect with backoff. Raises `GaveUp`
        after `max_tries` failed registrations in a row."""
        sender = supervise(self._sender(), name="worker-link-sender")
        try:
            async with aiohttp.ClientSession() as http:
                while True:
                    try:
                        await self._session(http)
                    except (aiohttp.ClientError, ConnectionError, OSError, TimeoutError) as e:
                        self._failures += 1
                        if self._failures >= self._max_tries:
                            raise GaveUp(
                                f"could not register with livekit-server {self._failures} "
                                f"times in a row; last: {e}"
                            ) from e
                        delay = min(MAX_BACKOFF_S, 0.5 * 2 ** (self._failures - 1))
                        level = logging.INFO if self._failures == 1 else logging.WARNING
                        log.log(
                            level,
                            "worker connection lost (%s); registering again in %.1fs (try %d/%d)",
                            e,
                            delay,
                            self._failures + 1,
                            self._max_tries,
                        )
                        await asyncio.sleep(delay)
        finally:
            sender.cancel()
