"""The lkbot pytest plugin (installed with the package: `pip install lkbot`, and the
fixtures exist). docs/testing.md shows them at work.

Fixtures:

- `lkbot_stack` (session): a loopback livekit-server, the scripted LLM and the bot as
  you run it (`python -m bot start` in the test's root directory: your `.env`,
  `BOT_TOOLS_MODULE`, `BOT_MCP_SERVERS`...). Override `lkbot_settings` to give it
  BOT_* settings of its own.
- `lkbot` (function): a `bot.testing.kit.Kit`: `await lkbot.user("ann")`, faults,
  goldens, `judge`. Async tests need pytest-asyncio (`asyncio_mode = auto`).

Options: `--lkbot-llm URL` (a real OpenAI-compatible endpoint instead of the scripted
one; `env`: the endpoint your environment configures), `--lkbot-update-golden`,
`--lkbot-golden-dir` (default `tests/golden`). The judge uses LKBOT_JUDGE_MODEL with
OPENAI_API_KEY / OPENAI_BASE_URL.

This module imports nothing heavy: pytest loads it in every session of every project
that has the package installed.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .kit import Kit, Stack

try:  # the kit's own fixture works in pytest-asyncio's strict mode too
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # pragma: no cover - async tests need pytest-asyncio anyway
    async_fixture = pytest.fixture  # type: ignore[assignment]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lkbot", "lkbot testing kit")
    group.addoption(
        "--lkbot-llm",
        default=None,
        help="an OpenAI-compatible base URL to test against instead of the scripted LLM "
        "('env': the one OPENAI_BASE_URL / OPENAI_API_KEY configure)",
    )
    group.addoption(
        "--lkbot-update-golden",
        action="store_true",
        help="write the golden transcripts anew instead of comparing with them",
    )
    group.addoption(
        "--lkbot-golden-dir",
        default="tests/golden",
        help="where golden transcripts live, below the root directory (tests/golden)",
    )


@pytest.fixture(scope="session")
def lkbot_settings() -> dict[str, str]:
    """BOT_* settings for the bot under test, as {"tools_module": "myapp.tools"}; the
    environment and `.env` apply first. Override this fixture in your conftest.py."""
    return {}


@pytest.fixture(scope="session")
def lkbot_stack(request: pytest.FixtureRequest, lkbot_settings: dict[str, str]) -> Iterator[Stack]:
    from .kit import Stack

    llm = request.config.getoption("--lkbot-llm")
    llm_url = None if llm is None else ("" if llm == "env" else str(llm))
    started = time.monotonic()
    stack = Stack(settings=lkbot_settings, cwd=Path(request.config.rootpath), llm_url=llm_url)
    try:
        stack.start()
    except FileNotFoundError as e:  # no livekit-server: say how to get one
        stack.stop()
        pytest.exit(f"lkbot: {e}", returncode=3)
    except BaseException:
        stack.stop()
        raise
    parts = ", ".join(f"{k} {v:.1f}s" for k, v in stack.started_in.items())
    request.config.stash[_STARTUP] = f"{time.monotonic() - started:.1f}s ({parts})"
    yield stack
    stack.stop()


_STARTUP = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    startup = terminalreporter.config.stash.get(_STARTUP, None)
    if startup is not None:
        terminalreporter.write_line(f"lkbot: the stack started in {startup}")


@async_fixture
async def lkbot(request: pytest.FixtureRequest, lkbot_stack: Stack) -> AsyncIterator[Kit]:
    from .kit import Kit, openai_judge

    model = os.environ.get("LKBOT_JUDGE_MODEL")
    base = os.environ.get("OPENAI_BASE_URL") or (
        "https://api.openai.com/v1" if os.environ.get("OPENAI_API_KEY") else ""
    )
    judge = (
        openai_judge(model, base, os.environ.get("OPENAI_API_KEY", "none"))
        if model and base
        else None
    )
    kit = Kit(
        lkbot_stack,
        golden_dir=Path(request.config.rootpath) / request.config.getoption("--lkbot-golden-dir"),
        update_golden=bool(request.config.getoption("--lkbot-update-golden")),
        judge_llm=judge,
    )
    yield kit
    await kit.aclose()
