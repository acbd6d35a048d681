"""One event loop, one scripted LLM server and one turn engine for many hypothesis
examples: each example gets a fresh dispatcher on a fresh in-memory transport, and
runs its scenario with `rig.run(coro)`."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

from bot.config import Settings
from bot.core.dispatcher import Dispatcher
from bot.llm.endpoint import build_llm
from bot.llm.tools import load_tools
from bot.testing.llm_server import ScriptedLLMServer
from bot.testing.memory import MemoryTransport
from bot.transport import Peer
from bot.turns.engine import TurnEngine

T = TypeVar("T")


def explore(examples: int) -> Any:
    """The hypothesis settings of the exploring tests: no per-example deadline (real
    HTTP on a loaded box), and a module-scoped rig shared by the examples."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


class Rig:
    def __init__(self, **overrides: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = ScriptedLLMServer()
        self.loop.run_until_complete(self.server.start())
        params: dict[str, Any] = {
            "openai_base_url": self.server.base_url,
            "model": "scripted",
            "tools_module": "tests.tools_fixture",
            "delta_interval_ms": 0,
            "llm_retries": 0,
        }
        params.update(overrides)
        self.settings = Settings(**params)
        self.llm = build_llm(self.settings)
        peers = [Peer(identity="alice", name="Alice", kind="standard")]
        self._shared: tuple[Dispatcher, MemoryTransport] | None = None
        self.engine = TurnEngine(self.settings, self.llm, load_tools(self.settings, lambda: peers))

    def bot(self, **overrides: Any) -> tuple[Dispatcher, MemoryTransport]:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        transport = MemoryTransport()
        dispatcher = Dispatcher(settings, transport, self.engine)
        transport.attach(dispatcher)
        return dispatcher, transport

    @property
    def transport_bot(self) -> tuple[Dispatcher, MemoryTransport]:
        """One dispatcher shared by many examples (each uses senders of its own)."""
        if self._shared is None:
            self._shared = self.bot()
        return self._shared

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        if self._shared is not None:
            self.run(self._shared[0].aclose())
        self.run(self.llm.aclose())
        self.run(self.server.stop())
        self.run(self.loop.shutdown_asyncgens())  # as asyncio.run: closes the LLM session
        self.loop.close()


def rig_fixture(**overrides: Any) -> Iterator[Rig]:
    rig = Rig(**overrides)
    try:
        yield rig
    finally:
        rig.close()
