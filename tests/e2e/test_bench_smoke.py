"""The benchmark harness runs end to end and writes a well-formed report (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .procs import ROOT


@pytest.mark.timeout(900)  # bounds the test on a loaded box; its run is bounded below
def test_quick_bench_writes_tables_and_plots(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--users",
            "1",
            "--no-micro",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {(r["system"], r["profile"]) for r in rows} == {
        ("echo", "floor"),
        ("ours", "instant"),
        ("ours", "realistic"),
        ("peer", "instant"),
        ("peer", "realistic"),
        ("ours-shared", "instant"),
        ("ours-shared", "realistic"),
    }
    # every system answered; errors are reported, not asserted away (a loaded box may
    # time a client out: that is a measurement, not a failure of the harness)
    assert all(r["turns"] > 0 and isinstance(r["errors"], int) for r in rows)
    report = (tmp_path / "results.md").read_text()
    for heading in (
        "## Headline",
        "### Transport floor",
        "### Profile `instant`",
        "### Profile `realistic`",
    ):
        assert heading in report
    table = [line for line in report.splitlines() if line.startswith("| 1 | lkbot |")]
    assert len(table) == 2 and all(line.count("|") == 10 for line in table)
    assert "| 3 | lkbot, one room |" in report
    for png in ("latency.png", "throughput.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _run(*args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=900
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return run.stdout


@pytest.mark.timeout(900)
def test_burst_bench_runs_every_scenario() -> None:
    out = _run("bench.burst", "--sizes", "2", "--repeat", "1", "--answer-sizes", "1")
    rows = [line for line in out.splitlines() if line.startswith("| 2 |")]
    # clients creating the rooms, then rooms created by the API: the bot came to each
    assert len(rows) == 2, out
    assert rows[0].split("|")[3].strip() == "2/2" and rows[1].split("|")[2].strip() == "2/2"
    answers = [line for line in out.splitlines() if line.startswith("| 1 |")]
    assert [line.split("|")[2].strip() for line in answers] == [
        "echo floor",
        "lkbot",
        "AgentSession",
    ]


@pytest.mark.timeout(900)
def test_idle_bench_runs_every_scenario() -> None:
    out = _run(
        "bench.idle", "--rooms", "2", "--users", "4", "--users-per-room", "2", "--seconds", "1"
    )
    rows = [line.split("|")[1].strip() for line in out.splitlines() if "| 2 |" in line]
    assert rows == [
        "bare rtc.Room, livekit.rtc defaults",
        "bare rtc.Room, native logs kept in Rust",
        "lkbot worker",
        "lkbot worker",
    ], out


@pytest.mark.timeout(900)
def test_client_tool_bench_measures_every_leg() -> None:
    result = json.loads(_run("bench.client_tool", "--turns", "3"))
    assert result["floor"]["n"] == result["peer"]["n"] == 3
    assert {k: v["n"] for k, v in result["ours"].items()} == {"plain": 3, "tool": 3, "leg": 3}


@pytest.mark.timeout(900)
def test_flood_bench_measures_both_phases() -> None:
    result = json.loads(_run("bench.flood", "--turns", "3"))
    for phase in ("alone", "flood"):
        assert result[phase]["n"] > 0 and result[phase]["worker_cpu_pct"] > 0
    assert result["flooder"]["sent"] > 0
    assert result["floor"]["n"] == result["peer"]["n"] == 3


@pytest.mark.timeout(900)
def test_goals_bench_measures_before_and_after() -> None:
    """Before from a git worktree (HEAD here: any clone has it), after, AgentSession
    and the echo floor; every line measured."""
    out = _run(
        "bench.goals",
        *("--before", "HEAD", "--rounds", "1", "--rooms", "1"),
        *("--room-users", "4", "--room-turns", "1", "--flood-turns", "3"),
    )
    result = json.loads(out)
    for label in ("before", "after", "AgentSession"):
        assert result["one_user"][label]["n"] == 10
        assert result["one_user"][label]["cpu_ms_per_turn"] > 0
    for floor in ("echo", "echo3"):
        assert result["one_user"][floor]["n"] == 30
        assert result["one_user"][floor]["errors"] == 0
    for label in ("before", "after"):
        assert result["room"][label]["n"] == 4
        assert result["flood"][label]["flood"]["n"] > 0
