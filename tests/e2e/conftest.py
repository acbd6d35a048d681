from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from bot import sdk
from bot.client.bot_client import BotClient
from bot.config import Settings
from bot.dev import livekit_server
from bot.room.tokens import mint_token

from .procs import STARTED, Proc, start_llm_server, start_worker

Connect = Callable[..., Awaitable[BotClient]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


LOG_TAIL_LINES = 120


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed end-to-end test shows what the processes it ran logged meanwhile (the
    workers' logs are files; on a CI box they are gone with it)."""
    report = yield
    if report.failed and call.when == "call":
        sizes: dict[int, int] = item.stash.get(_LOG_SIZES, {})
        for proc in STARTED:
            text = proc.log.read_bytes()[sizes.get(id(proc), 0) :].decode(errors="replace")
            if text.strip():
                tail = "\n".join(text.splitlines()[-LOG_TAIL_LINES:])
                report.sections.append((f"log of {proc.name} {proc.process.pid}", tail))
    return report


_LOG_SIZES = pytest.StashKey[dict[int, int]]()


@pytest.fixture(autouse=True)
def _log_offsets(request: pytest.FixtureRequest) -> None:
    """Where each process's log stood when the test began."""
    request.node.stash[_LOG_SIZES] = {
        id(p): p.log.stat().st_size for p in STARTED if p.log.exists()
    }


@pytest.fixture(scope="session", autouse=True)
def _sdk_patches() -> None:
    """Many clients in the test process: the SDK patches the worker applies too."""
    sdk.enable()


@pytest.fixture(autouse=True)
def _clean_env() -> None:
    """The e2e tests read no settings in-process; overrides the unit-test fixture."""


@pytest.fixture(scope="module")
def own_lk() -> Iterator[livekit_server.DevServer]:
    """A livekit-server of the test module's own: the session's worker takes none of
    its rooms, and the workers its tests start take no one else's."""
    server = livekit_server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lk() -> Iterator[livekit_server.DevServer]:
    server = livekit_server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llm_url() -> Iterator[str]:
    proc, url = start_llm_server()
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def worker(lk: livekit_server.DevServer, llm_url: str) -> Iterator[Proc]:
    """The automatic-dispatch worker most tests talk to."""
    proc = start_worker(lk, llm_url)
    yield proc
    proc.stop()


def settings_for(lk: livekit_server.DevServer, agent_name: str = "") -> Settings:
    return Settings(
        livekit_url=lk.url,
        livekit_api_key=lk.api_key,
        livekit_api_secret=lk.api_secret,
        agent_name=agent_name,
    )


@pytest.fixture
async def clients() -> AsyncIterator[list[BotClient]]:
    """Clients a test makes itself; all disconnected after it."""
    made: list[BotClient] = []
    yield made
    await asyncio.gather(*(c.disconnect() for c in made), return_exceptions=True)


@pytest.fixture
def room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def connect(lk: livekit_server.DevServer) -> AsyncIterator[Connect]:
    clients: list[BotClient] = []

    async def make(
        identity: str,
        room: str,
        *,
        agent_name: str | None = None,
        dispatch_name: str = "",
        wait_agent: bool = True,
    ) -> BotClient:
        client = BotClient(agent_name=agent_name)
        clients.append(client)
        token = mint_token(settings_for(lk, dispatch_name), room=room, identity=identity)
        if wait_agent:
            await client.connect(lk.url, token)
        else:
            from livekit import rtc

            await client.room.connect(lk.url, token, rtc.RoomOptions(auto_subscribe=False))
        return client

    yield make
    for c in clients:
        await c.disconnect()
