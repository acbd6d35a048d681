"""The benchmark harness runs end to end and writes a well-formed report (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .procs import ROOT


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
