"""Markdown tables and PNG plots from the sweep's rows."""

from __future__ import annotations

import argparse
import json
import math
import platform
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .run import PROFILES

Row = dict[str, Any]


def fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    import os

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def _get(rows: list[Row], system: str, profile: str, users: int) -> Row | None:
    return next(
        (r for r in rows if (r["system"], r["profile"], r["users"]) == (system, profile, users)),
        None,
    )


def tables(rows: list[Row]) -> str:
    users = sorted({r["users"] for r in rows})
    out = []
    out.append("### Transport floor (echo participant, round trip)\n")
    out.append("| users | p50 ms | p90 ms | p99 ms | round trips/s | errors |")
    out.append("|---:|---:|---:|---:|---:|---:|")
    for n in users:
        r = _get(rows, "echo", "floor", n)
        if r:
            out.append(
                f"| {n} | {fmt(r['end_p50'])} | {fmt(r['end_p90'])} | {fmt(r['end_p99'])} "
                f"| {fmt(r.get('turns_per_s'))} | {r['errors']} |"
            )
    for profile, spec in PROFILES.items():
        out.append(f"\n### Profile `{profile}`: {spec['about']}\n")
        out.append(
            "| users | system | first text p50 / p99 ms | end p50 / p99 ms "
            "| ack p50 ms | turns/s | worker CPU ms/turn | PSS MB/session | errors |"
        )
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for n in sorted({r["users"] for r in rows if r["system"] != "echo"}):
            for system, label in (
                ("ours", "lkbot"),
                ("peer", "AgentSession"),
                ("ours-shared", "lkbot, one room"),
            ):
                r = _get(rows, system, profile, n)
                if r is None:
                    continue
                out.append(
                    f"| {n} | {label} | {fmt(r['first_p50'])} / {fmt(r['first_p99'])} "
                    f"| {fmt(r['end_p50'])} / {fmt(r['end_p99'])} | {fmt(r['ack_p50'])} "
                    f"| {fmt(r.get('turns_per_s'), 2)} | {fmt(r.get('cpu_ms_per_turn'))} "
                    f"| {fmt(r.get('pss_mb_per_session'))} | {r['errors']} |"
                )
    return "\n".join(out) + "\n"


def headline(rows: list[Row]) -> str:
    """Our overhead above the floor, and the ratios against the peer."""
    out = [
        "| profile | users | overhead p50 ms | overhead p99 ms | turns/s lkbot : "
        "AgentSession | CPU/turn lkbot : AgentSession |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for profile, spec in PROFILES.items():
        for n in sorted({r["users"] for r in rows}):
            ours, peer = _get(rows, "ours", profile, n), _get(rows, "peer", profile, n)
            floor = _get(rows, "echo", "floor", n)
            if not (ours and floor):
                continue
            over = [ours[f"first_p{q}"] - floor[f"end_p{q}"] - spec["ttft_ms"] for q in (50, 99)]
            tps = cpu = "–"
            if peer and peer.get("turns_per_s") and ours.get("turns_per_s"):
                tps = f"{ours['turns_per_s'] / peer['turns_per_s']:.2f}"
            if peer and peer.get("cpu_ms_per_turn") and ours.get("cpu_ms_per_turn"):
                cpu = f"{ours['cpu_ms_per_turn'] / peer['cpu_ms_per_turn']:.2f}"
            out.append(f"| {profile} | {n} | {fmt(over[0])} | {fmt(over[1])} | {tps} | {cpu} |")
    return "\n".join(out) + "\n"


def micro_table(bench: dict[str, Any]) -> str:
    out = ["| benchmark | mean µs | stddev µs | rounds |", "|---|---:|---:|---:|"]
    for b in bench.get("benchmarks", []):
        s = b["stats"]
        out.append(
            f"| {b['name'].removeprefix('test_')} | {fmt(s['mean'] * 1e6, 2)} "
            f"| {fmt(s['stddev'] * 1e6, 2)} | {s['rounds']} |"
        )
    return "\n".join(out) + "\n"


def profile_table(raw: Path, top: int = 12) -> str:
    """Inclusive share of samples per function, from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        for frame in set(stack.split(";")[1:]):  # [0] is the process/thread
            inclusive[frame] += n
    # process headers, the runners every job sits under, and waiting: not costs
    skip = (
        "process ",
        " main(",
        "<module>",
        "run_forever",
        "_run_once",
        "run_until_complete",
        "_run (asyncio",
        "run (asyncio",
        "_bootstrap",
        "spawn_main",
        "_serve_one",
        "BaseProcess.run",
        "_ProcClient.run",
        "Selector.select",
        "Event.wait",
        "Condition.wait",
        "Thread.run",
        "base_events.py",
        "runners.py",
        "forkserver.py",
        "spawn.py",
        "proc_main (",
    )
    out = ["| share of samples | function |", "|---:|---|"]
    shown = 0
    for frame, n in inclusive.most_common():
        if any(s in frame for s in skip):
            continue
        out.append(f"| {100 * n / max(total, 1):.1f}% | `{frame}` |")
        shown += 1
        if shown == top:
            break
    return "\n".join(out) + f"\n\n{total} samples.\n"


def _points(rows: list[Row], system: str, profile: str, users: list[int]) -> list[tuple[int, Row]]:
    found = [(n, _get(rows, system, profile, n)) for n in users]
    return [(n, r) for n, r in found if r is not None]


def plots(rows: list[Row], outdir: Path) -> list[Path]:
    users = sorted({r["users"] for r in rows})
    paths: list[Path] = []
    fig, axes = plt.subplots(1, len(PROFILES), figsize=(6 * len(PROFILES), 4.5), squeeze=False)
    for ax, profile in zip(axes[0], PROFILES, strict=True):
        for system, label, color in (
            ("ours", "lkbot", "tab:blue"),
            ("ours-shared", "lkbot, one room", "tab:green"),
            ("peer", "AgentSession", "tab:orange"),
            ("echo", "echo floor", "tab:gray"),
        ):
            prof = "floor" if system == "echo" else profile
            key = "end" if system == "echo" else "first"
            pts = _points(rows, system, prof, users)
            if not pts:
                continue
            xs = [n for n, _ in pts]
            ax.plot(xs, [r[f"{key}_p50"] for _, r in pts], "-o", color=color, label=f"{label} p50")
            ax.plot(xs, [r[f"{key}_p99"] for _, r in pts], "--", color=color, label=f"{label} p99")
        ax.set(
            title=f"time to first text — {profile}",
            xlabel="concurrent users (rooms)",
            ylabel="ms",
            xscale="log",
            yscale="log",
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(outdir / "latency.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(PROFILES), figsize=(6 * len(PROFILES), 4.5), squeeze=False)
    for ax, profile in zip(axes[0], PROFILES, strict=True):
        for system, label, color in (
            ("ours", "lkbot", "tab:blue"),
            ("ours-shared", "lkbot, one room", "tab:green"),
            ("peer", "AgentSession", "tab:orange"),
        ):
            pts = [(n, r) for n, r in _points(rows, system, profile, users) if r.get("turns_per_s")]
            ax.plot(
                [n for n, _ in pts],
                [r["turns_per_s"] for _, r in pts],
                "-o",
                color=color,
                label=label,
            )
        ax.set(
            title=f"completed turns/s — {profile}",
            xlabel="concurrent users (rooms)",
            ylabel="turns/s",
            xscale="log",
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(outdir / "throughput.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; the first column left-aligned, the others as given."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def publish_section(text: str, path: Path, start: str, end: str) -> None:
    """Put `text` (which begins with `start` and ends with `end`) into `path`, replacing
    the section between those marks, or appended when there is none yet."""
    doc = path.read_text() if path.exists() else "# lkbot benchmarks\n"
    if start in doc:
        head, rest = doc.split(start, 1)
        doc = head + text + rest.split(end, 1)[1].lstrip("\n")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc)


def turns_bench_main(
    argv: list[str] | None,
    *,
    prog: str,
    doc: str | None,
    turns: int,
    measure: Callable[[int], dict[str, Any]],
    publish: Callable[[dict[str, Any]], None],
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """The command line of a bench measured in turns: `--turns N`, `--publish` (into
    docs/performance.md); the result is printed as JSON. `parser`: one with more
    options of its own, already made (their values are its caller's to read)."""
    from bot import sdk

    sdk.enable()
    parser = parser or argparse.ArgumentParser(prog=prog, description=doc)
    parser.add_argument("--turns", type=int, default=turns)
    parser.add_argument("--publish", action="store_true", help="write docs/performance.md")
    args = parser.parse_args(argv)
    result = measure(args.turns)
    print(json.dumps(result, indent=2))
    if args.publish:
        publish(result)
    return 0
