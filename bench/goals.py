"""`python -m bench.goals`: issue 24's four goal lines, before and after, in one run.

One loopback livekit-server and the scripted LLM (instant: zero think time, 10-token
replies); our worker as it is now (*after*), our worker from another commit (*before*,
`--before REV`, run from a git worktree), LiveKit Agents' AgentSession worker and the
echo floor: all up at once and measured in alternating rounds, so that what loads this
box falls on each alike. Every worker runs with its default settings, one process.

1. Worker CPU per turn, one user: each round, `--rooms` rooms one after another, each
   with one user taking 10 turns after a warm-up turn; the worker's CPU (with its job
   processes) from the first measured turn to the end of the last (`load.CpuWindow`).
2. Overhead at one user: first text p50 − the echo round trip p50 − the LLM's own time
   to first text (a bare HTTP client's streamed request to the same scripted server,
   `LLM_SAMPLES` in each round). Beside it, *echo3*: the echo round trip with two
   ack-sized packets sent first, the SDK's part of the overhead (the protocol puts an
   ack and a turn.start before a turn's first text, and livekit-ffi sends a room's
   packets one at a time).
3. 100 users in one room (one bot serves them all, privately), 5 turns each after a
   warm-up turn, all at once (closed loop): first text p50 / p99. AgentSession has no
   such mode (one linked user, replies to the whole room), so it has no row.
4. A flood: `bench.flood`'s two phases (4 users' first text alone, then while a fifth
   participant floods the bot) for each of before and after.

    python -m bench.goals [--before REV] [--rounds 3] [--rooms 4] [--publish]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot import sdk

from .flood import flood_phases
from .report import fmt, machine, md_table, publish_section
from .run import PROFILES, run_load
from .stack import OURS_AGENT, PEER_AGENT, ROOT, Stack, nearest_rank, start_server_and_llm

PERFORMANCE = ROOT / "docs" / "performance.md"
MARK = ("<!-- goals:start -->", "<!-- goals:end -->")
# the commit issue 24's work started from
BEFORE = "6247bf4"
BEFORE_AGENT = "lkbot-before"
INSTANT = PROFILES["instant"]["text"]
ROOM_USERS = 100
LLM_SAMPLES = 30  # bare requests to the scripted LLM per round


def llm_first_texts(base_url: str, n: int) -> list[float]:
    """The LLM's own time to first text, in ms: a bare streamed request (aiohttp, one
    kept connection, as the worker's) with a turn's message, until the first text."""
    import aiohttp

    body = {
        "model": "scripted",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": INSTANT},
        ],
    }

    async def run() -> list[float]:
        took: list[float] = []
        async with aiohttp.ClientSession() as http:
            for i in range(n + 1):  # the first one opens the connection: not counted
                started = time.perf_counter()
                first = None
                async with http.post(f"{base_url}/chat/completions", json=body) as resp:
                    async for line in resp.content:
                        if first is None and line.startswith(b"data: {"):
                            delta = json.loads(line[6:])["choices"]
                            if delta and delta[0]["delta"].get("content"):
                                first = time.perf_counter()
                if i and first is not None:
                    took.append(1000 * (first - started))
        return took

    return asyncio.run(run())


def worktree(rev: str) -> Path:
    """A checkout of `rev` outside the repository (removed by `drop_worktree`)."""
    path = Path(tempfile.mkdtemp(prefix="lkbot-before-")) / "src"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(path), rev],
        check=True,
        capture_output=True,
    )
    return path


def drop_worktree(path: Path) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
        check=False,
        capture_output=True,
    )
    shutil.rmtree(path.parent, ignore_errors=True)


class Systems:
    """The workers under test, by label: (agent name, pid, load kind)."""

    def __init__(self, stack: Stack, before_root: Path | None) -> None:
        common = {"OPENAI_BASE_URL": stack.llm_url, "BOT_LOG_LEVEL": "WARNING"}
        self.by_label: dict[str, tuple[str, int, str]] = {}
        after = stack.start_ours(BOT_AGENT_NAME=OURS_AGENT, **common)
        self.by_label["after"] = (OURS_AGENT, after.pid, "ours")
        if before_root is not None:
            before = stack.start_ours(
                root=before_root, name="before", BOT_AGENT_NAME=BEFORE_AGENT, **common
            )
            self.by_label["before"] = (BEFORE_AGENT, before.pid, "ours")
        peer = stack.start_peer(**common)
        self.by_label["AgentSession"] = (PEER_AGENT, peer.pid, "peer")

    def ours(self) -> list[str]:
        return [label for label in self.by_label if self.by_label[label][2] == "ours"]


def _turns(
    stack: Stack, kind: str, rooms: list[str], agent: str, turns: int, pid: int | None
) -> tuple[list[dict[str, Any]], list[str], list[float]]:
    text = "hello" if kind.startswith("echo") else INSTANT
    plan = [{"profile": "instant", "text": text, "turns": turns}]
    cpu: list[float] = []
    records, errors = run_load(stack, kind, rooms, plan, agent, cpu_pid=pid, cpu=cpu)
    return records, errors, cpu


def one_user(stack: Stack, systems: Systems, rounds: int, rooms: int) -> dict[str, Any]:
    """Lines 1 and 2: per system, first texts and CPU per measured turn."""
    got: dict[str, dict[str, Any]] = {
        label: {"first": [], "cpu_s": 0.0, "turns": 0, "errors": []}
        for label in [*systems.by_label, "echo", "echo3", "LLM"]
    }
    echo_room = f"echo-{secrets.token_hex(3)}"
    echo = stack.start_echo([echo_room])
    try:
        for r in range(rounds):
            order = list(systems.by_label)
            order = order[r % len(order) :] + order[: r % len(order)]  # who goes first varies
            for label in order:
                agent, pid, kind = systems.by_label[label]
                for _ in range(rooms):
                    room = f"g1-{label[:5]}-{secrets.token_hex(3)}"
                    records, errors, cpu = _turns(stack, kind, [room], agent, 10, pid)
                    ok = [x for x in records if x["ok"]]
                    g = got[label]
                    g["first"] += [x["first"] for x in ok if "first" in x]
                    g["errors"] += errors + [x.get("why", "") for x in records if not x["ok"]]
                    if cpu and ok:
                        g["cpu_s"] += cpu[0]
                        g["turns"] += len(ok)
                print(f"one user, round {r + 1}: {label} done", file=sys.stderr, flush=True)
            for floor in ("echo", "echo3"):
                records, errors, _ = _turns(stack, floor, [echo_room], "", 30, None)
                got[floor]["first"] += [x["first"] for x in records if x["ok"]]
                got[floor]["errors"] += errors
            got["LLM"]["first"] += llm_first_texts(stack.llm_url, LLM_SAMPLES)
    finally:
        echo.terminate()
        echo.wait(30)
    out: dict[str, Any] = {}
    for label, g in got.items():
        out[label] = {
            "n": len(g["first"]),
            "first_p50_ms": nearest_rank(g["first"], 0.5),
            "first_p99_ms": nearest_rank(g["first"], 0.99),
            "cpu_ms_per_turn": 1000 * g["cpu_s"] / g["turns"] if g["turns"] else None,
            "errors": len(g["errors"]),
            "error_samples": sorted(set(g["errors"]))[:3],
        }
    return out


def big_room(stack: Stack, systems: Systems, turns: int, users: int) -> dict[str, Any]:
    """Line 3: `users` users in one room, each closed loop."""
    out: dict[str, Any] = {}
    for label in systems.ours():
        agent, _, kind = systems.by_label[label]
        room = f"g3-{label[:5]}-{secrets.token_hex(3)}"
        plan = [{"profile": "instant", "text": INSTANT, "turns": turns}]
        started = time.perf_counter()
        records, errors = run_load(stack, kind, [room] * users, plan, agent)
        ok = [x for x in records if x["ok"]]
        firsts = [x["first"] for x in ok if "first" in x]
        out[label] = {
            "n": len(firsts),
            "first_p50_ms": nearest_rank(firsts, 0.5),
            "first_p99_ms": nearest_rank(firsts, 0.99),
            "end_p50_ms": nearest_rank([x["end"] for x in ok], 0.5),
            "errors": len(errors) + len(records) - len(ok),
            "error_samples": sorted({*errors, *(x.get("why", "") for x in records)} - {""})[:3],
            "seconds": time.perf_counter() - started,
        }
        print(f"{users} users in one room: {label} done", file=sys.stderr, flush=True)
    return out


def flood(stack: Stack, systems: Systems, turns: int) -> dict[str, Any]:
    """Line 4, per worker of ours, with the echo round trip measured alongside."""
    os.environ.update(stack.env())
    out: dict[str, Any] = {}
    echo_room = f"g4-echo-{secrets.token_hex(3)}"
    echo = stack.start_echo([echo_room])
    try:
        for label in systems.ours():
            agent, pid, _ = systems.by_label[label]
            out[label] = asyncio.run(flood_phases(stack, pid, agent, turns, echo_room))
            print(f"flood: {label} done", file=sys.stderr, flush=True)
    finally:
        echo.terminate()
        echo.wait(30)
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    before_root = worktree(args.before) if args.before else None
    stack = start_server_and_llm()
    started = time.perf_counter()
    try:
        systems = Systems(stack, before_root)
        result: dict[str, Any] = {
            "machine": machine(),
            "before": args.before,
            "after": subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
            ).stdout.strip(),
            "one_user": one_user(stack, systems, args.rounds, args.rooms),
            "room_users": args.room_users,
            "room": big_room(stack, systems, args.room_turns, args.room_users),
            "flood": flood(stack, systems, args.flood_turns),
        }
        result["minutes"] = (time.perf_counter() - started) / 60
        return result
    finally:
        stack.close()
        if before_root is not None:
            drop_worktree(before_root)


def _ratio(a: Any, b: Any) -> str:
    return (
        f"{a / b:.2f}×" if isinstance(a, int | float) and isinstance(b, int | float) and b else "–"
    )


def _turn_rows(by_label: dict[str, Any], labels: list[str], extra: str) -> list[list[str]]:
    """Per system measured: turns, first text p50 and p99, `extra`, errors."""
    return [
        [
            label,
            str(by_label[label]["n"]),
            fmt(by_label[label]["first_p50_ms"]),
            fmt(by_label[label]["first_p99_ms"]),
            fmt(by_label[label][extra]),
            str(by_label[label]["errors"]),
        ]
        for label in labels
        if label in by_label
    ]


def publish(result: dict[str, Any]) -> None:
    one, room, fl = result["one_user"], result["room"], result["flood"]
    peer = one.get("AgentSession", {})
    echo = one["echo"]
    llm_ms = one.get("LLM", {}).get("first_p50_ms") or 0.0  # absent from older results
    labels = [x for x in ("before", "after") if x in one]
    rev = {"before": result.get("before") or "", "after": result.get("after") or ""}
    # the SDK's cost of the two packets the protocol puts before a turn's first text
    # (ack, turn.start): absent from older results
    echo3 = one.get("echo3", {}).get("first_p50_ms")
    packets = echo3 - echo["first_p50_ms"] if echo3 is not None else None
    rows = []
    for label in labels:
        o = one[label]
        cpu = o["cpu_ms_per_turn"]
        overhead = (
            o["first_p50_ms"] - echo["first_p50_ms"] - llm_ms
            if o["first_p50_ms"] is not None and echo["first_p50_ms"] is not None
            else None
        )
        f = fl.get(label, {})
        alone, flooded = f.get("alone", {}), f.get("flood", {})
        rows.append(
            [
                f"{label} (`{rev[label]}`)",
                f"{fmt(cpu)} ms = {_ratio(cpu, peer.get('cpu_ms_per_turn'))}",
                f"{fmt(overhead)} ms"
                + (f" ({fmt(packets)} of it the 2 packets)" if packets is not None else ""),
                f"{fmt(room.get(label, {}).get('first_p50_ms'))} ms",
                f"{_ratio(flooded.get('p99_ms'), alone.get('p99_ms'))} "
                f"({fmt(alone.get('p99_ms'), 0)} → {fmt(flooded.get('p99_ms'), 0)} ms)",
            ]
        )
    rows.append(["goal", "≤ 10 ms and ≤ 0.25×", "≤ 5 ms", "≤ 1,000 ms", "≤ 2×"])
    detail = _turn_rows(one, [*labels, "AgentSession", "echo", "echo3", "LLM"], "cpu_ms_per_turn")
    big = _turn_rows(room, labels, "end_p50_ms")
    floods = [
        [
            f"{label}, {phase}",
            str(fl[label][phase]["n"]),
            fmt(fl[label][phase]["p50_ms"]),
            fmt(fl[label][phase]["p99_ms"]),
            fmt(fl[label][phase].get("floor", {}).get("p50_ms")),
            fmt(fl[label][phase].get("floor", {}).get("p99_ms")),
            fmt(fl[label][phase]["worker_cpu_pct"]),
        ]
        for label in labels
        if label in fl
        for phase in ("alone", "flood")
    ]
    text = "\n".join(
        [
            MARK[0],
            "## Issue 24's goals, before and after",
            "",
            f"`python -m bench.goals`, {result['machine']}, {result['minutes']:.1f} min. "
            "One run: one livekit-server, the scripted LLM (instant: zero think time, "
            "10-token replies), our worker at the two commits named (*before* from a git "
            "worktree), AgentSession and the echo floor, all up at once and measured in "
            "alternating rounds; default settings, one process each. CPU per turn is the "
            "worker's (with its job processes) from a room's first measured turn to the "
            "end of its last; the ratio is to AgentSession's in the same run. Overhead is "
            "the first-text p50 above the echo round trip's and the LLM's own time to first "
            "text (*LLM*: a bare streamed HTTP request to the same scripted server, one kept "
            "connection, in the same rounds). *echo3*: the echo participant sends two "
            "packets the size of an ack and a turn.start before the echo, the moment the "
            "packet arrives, and the round trip ends at the echo: what LiveKit's SDK costs "
            "for the packets the protocol puts before a turn's first text (livekit-ffi "
            "publishes a room's packets one at a time: `data_task` in "
            "livekit-ffi/src/server/room.rs awaits each `publish_data`). Its p50 above the "
            "echo's is the overhead's part named *the 2 packets*.",
            "",
            md_table(
                [
                    "worker",
                    "CPU per turn, one user",
                    "overhead p50, one user",
                    f"first text p50, {result['room_users']} users in one room",
                    "flood: others' first-text p99, flood ÷ alone",
                ],
                rows,
            ),
            "",
            "One user per room, 10 turns per room:",
            "",
            md_table(
                ["system", "turns", "first p50 ms", "first p99 ms", "CPU ms/turn", "errors"], detail
            ),
            "",
            f"{result['room_users']} users in one room, all at once:",
            "",
            md_table(
                ["worker", "turns", "first p50 ms", "first p99 ms", "end p50 ms", "errors"], big
            ),
            "",
            "The flood (`bench.flood`'s phases: 4 users, then the same while a fifth floods; "
            "meanwhile a participant of another room makes round trips to the echo "
            "participant, 0.3 s apart: what the box's transport does, without our bot):",
            "",
            md_table(
                [
                    "worker, phase",
                    "turns",
                    "first text p50 ms",
                    "p99 ms",
                    "echo p50 ms",
                    "echo p99 ms",
                    "worker CPU %",
                ],
                floods,
            ),
            MARK[1],
            "",
            "",
        ]
    )
    publish_section(text, PERFORMANCE, *MARK)


def main(argv: list[str] | None = None) -> int:
    sdk.enable()  # the load generator: as cheap as the worker's rooms
    parser = argparse.ArgumentParser(
        prog="python -m bench.goals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--before", default=BEFORE, help=f"the commit to compare with ({BEFORE}); '' for none"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rooms", type=int, default=4, help="rooms per system per round")
    parser.add_argument("--room-users", type=int, default=ROOM_USERS)
    parser.add_argument("--room-turns", type=int, default=5)
    parser.add_argument("--flood-turns", type=int, default=60)
    parser.add_argument("--out", type=Path, help="also write the result's JSON here")
    parser.add_argument("--publish", action="store_true", help="write docs/performance.md")
    args = parser.parse_args(argv)
    result = measure(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.publish:
        publish(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
