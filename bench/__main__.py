"""`python -m bench`: latency and throughput over a real LiveKit server.

Measures, in one run on one server: lkbot (this project's worker, `python -m bot start`),
LiveKit Agents' AgentSession in text-only mode on the same scripted LLM, and the transport
floor (an echo participant); sweeps concurrency (N rooms x 1 user); runs the protocol
micro benchmarks; profiles our worker under load with py-spy. Writes a markdown report
and PNG plots. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bot import sdk

from . import report
from .report import publish_section
from .run import PROFILES, Config, py_spy, sweep
from .stack import ROOT, start_stack

MARK_START, MARK_END = "<!-- sweep:start -->", "<!-- sweep:end -->"

FULL = Config(
    users=[1, 5, 10, 20, 40],
    turns={"instant": 10, "realistic": 3},
    floor_turns=20,
    shared_room=[20, 50, 100],
    profile_worker_at=20,
)
QUICK = Config(
    users=[1, 3],
    turns={"instant": 3, "realistic": 1},
    floor_turns=5,
    shared_room=[3],
    profile_worker_at=None,
)


def run_micro(out: Path) -> dict[str, object]:
    path = out / "micro.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "bench" / "micro.py"),
            "-q",
            "--benchmark-only",
            f"--benchmark-json={path}",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "-o",
            "filterwarnings=",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    result: dict[str, object] = json.loads(path.read_text())
    return result


def write_report(
    out: Path,
    rows: list[dict[str, object]],
    micro: dict[str, object] | None,
    profile: Path | None,
    mode: str,
    seconds: float,
    server_version: str,
) -> Path:
    parts = [
        "# lkbot benchmarks\n",
        f"Run {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} ({mode} profile, "
        f"{seconds / 60:.1f} min) on {report.machine()}; {server_version} on loopback; "
        "everything on one machine: server, workers, LLM test server and load processes "
        "share the cores.\n",
        "Closed loop: each user is in its own room and sends the next message when the "
        "previous turn ends; one unrecorded warm-up turn per user. LLM profiles, served by "
        "the project's OpenAI-compatible test server to both bots:\n",
        *[f"- `{p}`: {spec['about']}" for p, spec in PROFILES.items()],
        "\nlkbot's *first text* is the first `turn.delta`; AgentSession's is the first chunk "
        "of its `lk.transcription` stream; *end* is `turn.end` / the end of that stream. "
        "Worker CPU and memory cover the worker process and its job processes; memory is PSS "
        "(shared pages split between the processes that share them), per session: the "
        "growth over the idle worker, divided by the rooms.\n",
        "## Headline\n",
        "Overhead = lkbot's time to first text − the echo round trip − the LLM's scripted "
        "time to first token (same percentile, same concurrency). The percentiles come from "
        "separate runs, so a tail that was worse for the floor than for lkbot shows as a "
        "negative p99; at 20+ users the 2-core box is saturated and tails are noisy.\n",
        "Errors are users whose room did not get its agent within 30 s (samples in "
        "rows.json): on this busy 2-core box, AgentSession's process pool loses rooms from "
        "about 10 concurrent new rooms on (`all in-flight spawns failed to initialize`, "
        "server-side `assignment for job ... timed out`). Rates and CPU per turn count "
        "completed turns only. The one-room rows avoid per-room dispatch.\n",
        report.headline(rows),
        "![time to first text](latency.png)\n",
        "![turns per second](throughput.png)\n",
        "## Results\n",
        report.tables(rows),
    ]
    if micro is not None:
        parts += ["## Micro benchmarks (pytest-benchmark)\n", report.micro_table(micro)]
    if profile is not None and profile.exists():
        parts += [
            "## Where our worker spends its time (py-spy, instant profile, "
            f"{FULL.profile_worker_at} users)\n",
            "Inclusive share of CPU samples across the worker and its job processes "
            "(idle time excluded).\n",
            report.profile_table(profile),
        ]
    parts.append("\nReproduce: `make bench` (full, ~10 min) or `make bench-quick`.\n")
    path = out / "results.md"
    path.write_text("\n".join(parts))
    return path


def main() -> int:
    sdk.enable()  # the load generator: many clients, as cheap as the worker's rooms
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run (~1 min)")
    parser.add_argument("--users", help="comma-separated concurrency levels, e.g. 1,5,20")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/<time>)")
    parser.add_argument("--no-micro", action="store_true", help="skip the micro benchmarks")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also copy the report and plots to docs/performance.md",
    )
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    if args.users:
        cfg.users = [int(u) for u in args.users.split(",")]
    if not py_spy():
        cfg.profile_worker_at = None
    out = args.out or ROOT / "bench" / "results" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    steps = len(cfg.users) * 3 + len(cfg.shared_room) + 2
    with Progress(
        TextColumn("{task.description:<32}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("starting server and workers", total=steps)
        stack = start_stack()
        bar.advance(task)
        try:
            profile = out / "profile.txt" if cfg.profile_worker_at else None

            def progress(what: str) -> None:
                bar.update(task, description=what, advance=1)
                if not bar.console.is_terminal:  # logs and CI: a plain line per step
                    elapsed = time.monotonic() - started
                    print(f"[{elapsed:6.0f}s] {what}", file=sys.stderr, flush=True)

            bar.update(task, description="sweep")
            rows = sweep(stack, cfg, progress, profile)
        finally:
            server_version = subprocess.run(
                [str(ROOT / ".tools/bin/livekit-server"), "--version"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            stack.close()
        (out / "rows.json").write_text(json.dumps(rows, indent=1))
        micro = None
        if not args.no_micro:
            bar.update(task, description="micro benchmarks")
            micro = run_micro(out)
        bar.update(task, description="report", advance=1)
        report.plots(rows, out)
        path = write_report(
            out,
            rows,
            micro,
            profile,
            "quick" if args.quick else "full",
            time.monotonic() - started,
            server_version,
        )
    print(path.read_text())
    print(f"\nresults: {out}")
    if args.publish:
        docs = ROOT / "docs"
        (docs / "bench").mkdir(exist_ok=True)
        for png in ("latency.png", "throughput.png"):
            shutil.copy(out / png, docs / "bench" / png)
        text = path.read_text().replace("](latency.png)", "](bench/latency.png)")
        text = text.replace("](throughput.png)", "](bench/throughput.png)")
        # its own section only: the burst, store and idle benches publish theirs, and
        # the text read by hand around them stays
        title, _, body = text.partition("\n")
        doc = docs / "performance.md"
        if not doc.exists():
            doc.write_text(title + "\n")
        publish_section(f"{MARK_START}\n{body.strip()}\n{MARK_END}\n", doc, MARK_START, MARK_END)
        print("published to docs/performance.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
