"""Processes the end-to-end tests run: the scripted LLM server and bot workers."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.dev import livekit_server
from bot.dev.livekit_server import DevServer
from bot.dev.processes import wait_until
from bot.testing.kit import Process, spawn, start_scripted_llm

ROOT = Path(__file__).resolve().parents[2]


Proc = Process  # the kit's (bot/testing/kit.py): our suite starts processes as it does

# every process the tests started, for the logs a failed test shows (conftest.py)
STARTED: list[Proc] = []


def _spawn(args: list[str], env: dict[str, str], name: str) -> Proc:
    proc = spawn(args, env, name, ROOT)
    STARTED.append(proc)
    return proc


def start_llm_server() -> tuple[Proc, str]:
    proc, url = start_scripted_llm(dict(os.environ), ROOT, timeout=30)
    STARTED.append(proc)
    return proc, url


def _env(lk: DevServer, **extra: str) -> dict[str, str]:
    """This environment without the developer's BOT_/OPENAI_ settings, pointed at `lk`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "OPENAI_"))}
    env.update(
        LIVEKIT_URL=lk.url,
        LIVEKIT_API_KEY=lk.api_key,
        LIVEKIT_API_SECRET=lk.api_secret,
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def machine(name: str) -> dict[str, str]:
    """The environment of a worker "machine" of its own: home, temp and data dirs
    that no other worker shares (they share only LiveKit and the store)."""
    root = Path(tempfile.mkdtemp(prefix=f"lkbot-machine-{name}-"))
    dirs = {"HOME": root / "home", "TMPDIR": root / "tmp", "XDG_DATA_HOME": root / "data"}
    for d in dirs.values():
        d.mkdir(mode=0o700)
    return {k: str(v) for k, v in dirs.items()}


def start_worker(
    lk: DevServer, llm_url: str | None, *, env: dict[str, str] | None = None, **settings: str
) -> Proc:
    """`python -m bot start`, as users run it, until it has registered with LiveKit.

    With no `llm_url`, no LLM endpoint is configured: the local model answers. `env`:
    more of the environment (e.g. `machine(...)`)."""
    extra = env or {}
    ready = Path(tempfile.mkdtemp(prefix="lkbot-ready-")) / "ready"
    env = _env(
        lk,
        BOT_HTTP_PORT="0",
        BOT_PROCESSES="1",  # one process to watch and kill; test_processes.py runs more
        BOT_TOOLS_MODULE="tests.tools_fixture",
        BOT_APPROVAL_TOOLS="publish_note",  # the one fixture tool that asks the user
        # Generous: tests stall turns on purpose and cancel or stop them; on a loaded
        # box a short LLM timeout would win that race. The timeout itself is unit-tested.
        BOT_LLM_TIMEOUT="120",
        BOT_TOOL_TIMEOUT="2",
        BOT_LLM_RETRIES="0",
        # tests stall turns forever and then stop the worker: the drain (which waits for
        # running turns) is bounded short; the rolling-restart test sets its own
        BOT_DRAIN_TIMEOUT="2",
        # each worker its own conversation store, unless a test shares one (store=...)
        BOT_STORE=f"sqlite://{ready.parent}/conversations.db",
    )
    if llm_url is not None:
        env.update(OPENAI_BASE_URL=llm_url, BOT_MODEL="scripted")
    env.update({f"BOT_{k.upper()}": v for k, v in settings.items()})
    env.update(extra)
    proc = _spawn([sys.executable, "-m", "bot", "start", "--ready-file", str(ready)], env, "worker")
    wait_until(ready.exists, proc.process, proc.log, what="worker", timeout=120)
    return proc


def start_web(lk: DevServer, **settings: str) -> tuple[Proc, str]:
    """`python -m bot web --port 0` (the chat page and token endpoint); its URL."""
    env = _env(lk, **{f"BOT_{k.upper()}": v for k, v in settings.items()})
    proc = _spawn([sys.executable, "-m", "bot", "web", "--port", "0"], env, "web")
    wait_until(
        lambda: "chat page on " in proc.text(), proc.process, proc.log, what="web", timeout=60
    )
    url = proc.text().split("chat page on ", 1)[1].split()[0]
    return proc, url


@contextmanager
def own_stack(llm_url: str, **settings: str) -> Iterator[DevServer]:
    """A livekit-server of its own with one worker of these settings (for a test module
    whose bot must be configured apart from the session's)."""
    lk = livekit_server.start()
    try:
        worker = start_worker(lk, llm_url, **settings)
        try:
            yield lk
        finally:
            worker.stop()
    finally:
        lk.stop()
