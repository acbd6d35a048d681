"""The first answer in a new room: N users at once, each creating a room of its own
and sending one message as soon as the bot is there; time = room created → the first
text of the answer. For lkbot, LiveKit Agents' AgentSession and the echo floor (a bare
participant joining each room at the same moment). Run and published by `bench.burst`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass

from bot.dev.processes import stop_process

from .load import SYSTEMS, User
from .report import fmt, md_table
from .stack import PEER_AGENT, Stack, cpu_seconds, drain, nearest_rank, tree_cpu_seconds

BOUND_S = 120.0  # an answer later than this counts as never


@dataclass
class Answers:
    """N rooms at once, one user each: room created → the first text of the answer to
    the user's first message. The same clock for every system."""

    system: str
    rooms: int
    answered: int
    p50_s: float | None
    p99_s: float | None
    cpu_bot_s: float  # the bot side: our worker, the AgentSession worker tree, the echo
    cpu_server_s: float
    cpu_clients_s: float


async def first_answers(stack: Stack, system: str, n: int, bot_pid: int | None) -> Answers:
    """`system`: ours (automatic dispatch), peer (AgentSession, dispatched by the
    token), echo (a bare participant joining at the same moment as the users)."""
    tag = uuid.uuid4().hex[:6]
    rooms = [f"answer-{system}-{tag}-{i}" for i in range(n)]
    echo = stack.start_echo(rooms, on_go=True) if system == "echo" else None
    bot = echo.pid if echo is not None else bot_pid
    assert bot is not None
    users: list[User] = [SYSTEMS[system]() for _ in range(n)]
    agent = PEER_AGENT if system == "peer" else ""

    failures: list[str] = []

    async def one(room: str, user: User) -> float | None:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(user.connect(room, "user", agent), BOUND_S)
            marks = await asyncio.wait_for(user.turn("hi"), BOUND_S)
        except Exception as e:
            failures.append(f"{type(e).__name__}: {e}")
            return None
        return float(marks["first"]) - started

    # the bot side and the server with their children (AgentSession's job processes);
    # the load generator alone: its children are the server, the LLM and the workers
    def cpu() -> list[float]:
        return [
            tree_cpu_seconds(bot),
            tree_cpu_seconds(stack.lk.process.pid),
            cpu_seconds(os.getpid()),
        ]

    cpu0 = cpu()
    if echo is not None:
        assert echo.stdin is not None
        echo.stdin.write(b"go\n")
        echo.stdin.flush()
    times = await asyncio.gather(*(one(r, u) for r, u in zip(rooms, users, strict=True)))
    used = [c1 - c0 for c1, c0 in zip(cpu(), cpu0, strict=True)]
    await asyncio.gather(*(u.close() for u in users), return_exceptions=True)
    if echo is not None:
        stop_process(echo, 20)
    await drain(stack.lk)
    ok = [t for t in times if t is not None]
    if failures:
        print(f"  {system}: {len(failures)} without an answer, e.g. {failures[0]}", flush=True)
    return Answers(
        system=system,
        rooms=n,
        answered=len(ok),
        p50_s=statistics.median(ok) if ok else None,
        p99_s=nearest_rank(ok, 0.99),
        cpu_bot_s=used[0],
        cpu_server_s=used[1],
        cpu_clients_s=used[2],
    )


NAMES = {"ours": "lkbot", "peer": "AgentSession", "echo": "echo floor"}


def answers_table(results: list[Answers]) -> str:
    header = ["rooms at once", "system", "answered", "first answer p50 (s)", "p99 (s)"]
    header.append("CPU s: bot side / livekit-server / clients")
    rows = [
        [
            str(a.rooms),
            NAMES[a.system],
            f"{a.answered}/{a.rooms}",
            fmt(a.p50_s, 2),
            fmt(a.p99_s, 2),
            f"{a.cpu_bot_s:.1f} / {a.cpu_server_s:.1f} / {a.cpu_clients_s:.1f}",
        ]
        for a in results
    ]
    return md_table(header, rows)
