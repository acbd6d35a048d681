from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from bot.dev import redis_server
from bot.store import Store, open_store
from bot.store.redis import RedisStore
from bot.testing.llm_server import ScriptedLLMServer
from bot.testing.memory import MemoryTransport
from bot.transport import Peer

from .harness import Harness

MakeBot = Callable[..., Awaitable[Harness]]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--skip-local-model",
        action="store_true",
        help="skip the tests that run the offline local model (CI runs them)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--skip-local-model"):
        return
    skip = pytest.mark.skip(reason="--skip-local-model")
    for item in items:
        if "local_model" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # Tests never read the developer's .env or real keys.
    monkeypatch.chdir(tmp_path)
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def llm_server() -> AsyncIterator[ScriptedLLMServer]:
    server = ScriptedLLMServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_bot(llm_server: ScriptedLLMServer) -> AsyncIterator[MakeBot]:
    bots: list[Harness] = []

    async def make(**overrides: Any) -> Harness:
        params: dict[str, Any] = {
            "openai_base_url": llm_server.base_url,
            "model": "scripted",
            "tools_module": "tests.tools_fixture",
            "delta_interval_ms": 0,
            "llm_retries": 0,
        }
        store = overrides.pop("store", None)
        room = overrides.pop("room", "")
        extra_tools = overrides.pop("extra_tools", None)
        mcp_names = overrides.pop("mcp_names", frozenset())
        params.update(overrides)
        peers = [Peer(identity="alice", name="Alice", kind="standard")]
        bot = Harness(
            Settings(**params),
            MemoryTransport(peers),
            store=store,
            room=room,
            extra_tools=extra_tools,
            mcp_names=mcp_names,
        )
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        await bot.close()


@pytest.fixture
async def bot(make_bot: MakeBot) -> Harness:
    return await make_bot()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port, for every test that asks (each
    keeps to keys of its own: a prefix, or rooms and identities of its own)."""
    server = redis_server.start()
    try:
        yield server.url
    finally:
        server.stop()


OpenStore = Callable[[], Store]


@pytest.fixture(params=["sqlite", "redis"])
def open_same(request: pytest.FixtureRequest, tmp_path: Path) -> OpenStore:
    """Opens the same store again each call, as a restarted worker would."""
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'c.db'}"
        return lambda: open_store(url)
    url = request.getfixturevalue("redis_url")
    prefix = f"d{uuid.uuid4().hex[:8]}"

    def make() -> Store:
        store = open_store(url)
        assert isinstance(store, RedisStore)
        store.prefix = prefix
        return store

    return make
