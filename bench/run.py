"""The sweep: for each concurrency, each system, each LLM profile -> one summary row."""

from __future__ import annotations

import json
import math
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .stack import OURS_AGENT, PEER_AGENT, ROOT, Stack, TreeSampler

# LLM profiles, as scripts for the project's OpenAI-compatible test server.
PROFILES = {
    "instant": {
        "text": '!{"tokens": 10}',
        "ttft_ms": 0.0,
        "about": "zero think time, a 10-token reply",
    },
    "realistic": {
        "text": '!{"tokens": 100, "ttft_ms": 300, "tps": 50}',
        "ttft_ms": 300.0,
        "about": "300 ms to first token, 50 tokens/s, 100 tokens",
    },
}


@dataclass
class Config:
    users: list[int]
    turns: dict[str, int]  # per profile
    floor_turns: int
    shared_room: list[int]  # lkbot only: this many users in one room (one job process)
    profile_worker_at: int | None = None  # users count at which to run py-spy on our worker


def py_spy() -> str:
    """py-spy on PATH, or next to this interpreter (a venv's bin/ is often not on PATH)."""
    import shutil

    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    return found or ""


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def summarize(
    records: list[dict[str, Any]],
    errors: list[str],
    users: int,
    sampler: TreeSampler | None,
    baseline_mem: int,
) -> dict[str, Any]:
    ok = [r for r in records if r["ok"]]
    row: dict[str, Any] = {
        "users": users,
        "turns": len(ok),
        "errors": len(errors) + len(records) - len(ok),
        "error_samples": sorted({*errors, *(r["why"] for r in records if "why" in r)})[:3],
    }
    for key in ("ack", "start", "first", "end"):
        vals = [r[key] for r in ok if r.get(key) is not None]
        for q in (50, 90, 99):
            row[f"{key}_p{q}"] = _pct(vals, q)
    if ok:
        t0, t1 = min(r["at"] for r in ok), max(r["until"] for r in ok)
        row["turns_per_s"] = len(ok) / max(t1 - t0, 1e-9)
        if sampler is not None:
            row["cpu_ms_per_turn"] = sampler.cpu_between(t0, t1) / len(ok) * 1000
            mem = sampler.mem_max_between(t0, t1)
            row["pss_mb_per_session"] = max(mem - baseline_mem, 0) / users / 2**20
    return row


def run_load(
    stack: Stack,
    system: str,
    rooms: list[str],
    plan: list[dict[str, Any]],
    agent: str,
    *,
    cpu_pid: int | None = None,
    cpu: list[float] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Spread the users over load processes (two on this 2-core box once there are many).
    With `cpu_pid` (one load process only), the CPU seconds that worker spent on the
    measured turns are appended to `cpu`."""
    groups = 1 if len(rooms) <= 10 or cpu_pid is not None else 2
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.load",
                "--system",
                system,
                "--agent",
                agent,
                "--rooms",
                ",".join(rooms[i::groups]),
                "--plan",
                json.dumps(plan),
                *(["--cpu-pid", str(cpu_pid)] if cpu_pid is not None else []),
            ],
            env=stack.env(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for i in range(groups)
    ]
    records: list[dict[str, Any]] = []
    errors: list[str] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        for line in out.decode().splitlines():
            rec = json.loads(line)
            if "cpu_s" in rec:
                if cpu is not None:
                    cpu.append(rec["cpu_s"])
            elif "error" in rec:
                errors.append(rec["error"])
            else:
                records.append(rec)
    return records, errors


def _settle(sampler: TreeSampler, children: int, timeout: float = 30) -> None:
    """Wait (bounded) until finished rooms' job processes are gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(sampler._root.children(recursive=True)) <= children:
                return
        except Exception:
            return
        time.sleep(0.2)


def _start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Sample the worker and its job processes until SIGINT (idle time excluded)."""
    args = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _measure_bot(
    stack: Stack,
    sampler: TreeSampler,
    system: str,
    label: str,
    rooms: list[str],
    agent: str,
    cfg: Config,
) -> list[dict[str, Any]]:
    """Run every LLM profile on these users; one summary row per profile."""
    baseline = sampler.mem_now()
    plan = [{"profile": p, "text": PROFILES[p]["text"], "turns": cfg.turns[p]} for p in PROFILES]
    recs, errs = run_load(stack, system, rooms, plan, agent)
    return [
        {
            "system": label,
            "profile": profile,
            **summarize(
                [r for r in recs if r["profile"] == profile], errs, len(rooms), sampler, baseline
            ),
        }
        for profile in PROFILES
    ]


def sweep(
    stack: Stack, cfg: Config, progress: Callable[[str], None], profile_out: Path | None
) -> list[dict[str, Any]]:
    samplers = {name: TreeSampler(proc.pid) for name, proc in stack.workers.items()}
    idle_children = {name: len(s._root.children(recursive=True)) for name, s in samplers.items()}
    rows: list[dict[str, Any]] = []
    try:
        for users in cfg.users:
            tag = secrets.token_hex(2)
            # the floor
            progress(f"echo floor, {users} users")
            rooms = [f"echo-{users}-{tag}-{i}" for i in range(users)]
            echo = stack.start_echo(rooms)
            plan = [{"profile": "floor", "text": "hello", "turns": cfg.floor_turns}]
            recs, errs = run_load(stack, "echo", rooms, plan, "")
            echo.send_signal(signal.SIGTERM)
            echo.wait(30)
            rows.append(
                {"system": "echo", "profile": "floor", **summarize(recs, errs, users, None, 0)}
            )
            # the two bots, both LLM profiles on the same connected users
            for system, agent in (("ours", OURS_AGENT), ("peer", PEER_AGENT)):
                progress(f"{system}, {users} users")
                rooms = [f"{system}-{users}-{tag}-{i}" for i in range(users)]
                spy = None
                if system == "ours" and users == cfg.profile_worker_at and profile_out:
                    spy = _start_py_spy(stack.workers["ours"].pid, profile_out)
                rows += _measure_bot(stack, samplers[system], system, system, rooms, agent, cfg)
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(60)
                _settle(samplers[system], idle_children[system])
        # what only lkbot does: many users in one room, served by one job
        for users in cfg.shared_room:
            progress(f"lkbot, {users} users in one room")
            rooms = [f"shared-{users}-{secrets.token_hex(2)}"] * users
            rows += _measure_bot(
                stack, samplers["ours"], "ours", "ours-shared", rooms, OURS_AGENT, cfg
            )
            _settle(samplers["ours"], idle_children["ours"])
    finally:
        for s in samplers.values():
            s.stop()
    return rows
