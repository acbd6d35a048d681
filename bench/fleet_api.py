"""What keeping every room served costs LiveKit: API calls per minute of a fleet.

Two worker "machines" of `bot start` with two processes each (four workers, a shared
Redis store), one livekit-server, N rooms with one user each, every room served. Then
nothing happens for a minute: every API call in that minute is the fleet's upkeep
(dispatch watchdogs). Counted by livekit-server itself
(`livekit_node_twirp_request_status`, per method), not by the bot.

`--code DIR` runs the workers from another checkout (e.g. the commit before the fleet
rework, for the "before" column): `git worktree add /tmp/before <commit>`.

    python -m bench.fleet_api --rooms 40 [--code /tmp/before] [--publish]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from livekit import api
from prometheus_client.parser import text_string_to_metric_families

from bot import sdk
from bot.client.bot_client import BotClient
from bot.dev import livekit_server, redis_server
from bot.dev.processes import free_port, stop_process, wait_until
from bot.room.tokens import mint_token
from bot.testing.llm_server import ScriptedLLMServer

from .report import fmt, machine, md_table, publish_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "bench" / "fleet_api.json"
PERFORMANCE = ROOT / "docs" / "performance.md"
MARK = ("<!-- fleet-api:start -->", "<!-- fleet-api:end -->")


def api_calls(metrics_port: int) -> dict[str, float]:
    """livekit-server's count of API calls so far, by service.method."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    calls: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("livekit_node_twirp_request_status"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            key = f"{sample.labels.get('service', '')}.{sample.labels.get('method', '')}"
            calls[key] = calls.get(key, 0) + sample.value
    return calls


def start_machine(
    name: str, code: Path, lk: livekit_server.DevServer, store: str, llm_url: str
) -> tuple[subprocess.Popen[bytes], Path]:
    root = Path(tempfile.mkdtemp(prefix=f"lkbot-fleet-{name}-"))
    for d in ("home", "tmp", "data"):
        (root / d).mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "OPENAI_"))}
    env.update(
        LIVEKIT_URL=lk.url,
        LIVEKIT_API_KEY=lk.api_key,
        LIVEKIT_API_SECRET=lk.api_secret,
        PYTHONPATH=str(code),
        HOME=str(root / "home"),
        TMPDIR=str(root / "tmp"),
        XDG_DATA_HOME=str(root / "data"),
        OPENAI_BASE_URL=llm_url,
        BOT_MODEL="scripted",
        BOT_STORE=store,
        BOT_PROCESSES="2",
        BOT_HTTP_PORT=str(free_port()),
        BOT_LOG_LEVEL="WARNING",
        BOT_MAX_ROOMS="1000",
    )
    log = root / "worker.log"
    ready = root / "ready"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "start", "--ready-file", str(ready)],
            env=env,
            cwd=code,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(ready.exists, proc, log, what=f"machine {name}", timeout=180)
    return proc, log


async def measure(rooms: int, minutes: float, code: Path) -> dict[str, object]:
    llm = ScriptedLLMServer()
    await llm.start()
    redis = redis_server.start()
    metrics_port = free_port()
    lk = livekit_server.start(prometheus_port=metrics_port)
    machines: list[subprocess.Popen[bytes]] = []
    users: list[BotClient] = []
    try:
        for name in ("a", "b"):
            proc, _ = start_machine(name, code, lk, redis.url, llm.base_url)
            machines.append(proc)
        print(f"fleet up (code: {code}); joining {rooms} rooms...", flush=True)
        http = lk.url.replace("ws://", "http://")
        async with api.LiveKitAPI(http, lk.api_key, lk.api_secret) as lkapi:
            for i in range(rooms):
                name = f"fleet-{uuid.uuid4().hex[:6]}-{i}"
                await lkapi.room.create_room(api.CreateRoomRequest(name=name))
                user = BotClient()
                users.append(user)
                token = mint_token(
                    _settings(lk), room=name, identity=f"u{i}", can_update_metadata=True
                )
                await user.join(lk.url, token)
            await asyncio.gather(*(u.wait_bot(timeout=300) for u in users))
        print(f"every room has its bot; counting API calls for {minutes:g} min...", flush=True)
        before = api_calls(metrics_port)
        started = time.monotonic()
        await asyncio.sleep(minutes * 60)  # the measured window: nothing else happens
        after = api_calls(metrics_port)
        elapsed_min = (time.monotonic() - started) / 60
        per_min = {
            k: round((after.get(k, 0) - before.get(k, 0)) / elapsed_min, 1)
            for k in sorted(set(after) | set(before))
            if after.get(k, 0) - before.get(k, 0) > 0
        }
        return {
            "rooms": rooms,
            "machines": 2,
            "processes_per_machine": 2,
            "minutes": round(elapsed_min, 2),
            "calls_per_minute": per_min,
            "total_per_minute": round(sum(per_min.values()), 1),
        }
    finally:
        for u in users:
            await u.disconnect()
        for proc in machines:
            stop_process(proc, 60)
        lk.stop()
        redis.stop()
        await llm.stop()


def _settings(lk: livekit_server.DevServer):  # type: ignore[no-untyped-def]
    from bot.config import Settings

    return Settings(
        livekit_url=lk.url, livekit_api_key=lk.api_key, livekit_api_secret=lk.api_secret
    )


def publish(results: dict[str, dict[str, object]]) -> None:
    rows = []
    for label, r in results.items():
        calls = r["calls_per_minute"]
        assert isinstance(calls, dict)
        detail = ", ".join(f"{k.split('.')[-1]} {fmt(v)}" for k, v in calls.items()) or "none"
        rooms = r["rooms"]
        assert isinstance(rooms, int)
        total = r["total_per_minute"]
        assert isinstance(total, float | int)
        rows.append([label, str(rooms), fmt(total), fmt(total / rooms, 2), detail])
    text = "\n".join(
        [
            MARK[0],
            "### Fleet upkeep: LiveKit API calls per minute",
            "",
            f"`make bench` (`python -m bench.fleet_api`), {machine()}. Two worker machines "
            "× two processes (`bot start`, `BOT_PROCESSES=2`, a shared Redis store), one "
            "livekit-server, every room served by its bot, one idle minute counted by "
            "livekit-server itself (`livekit_node_twirp_request_status`).",
            "",
            md_table(["code", "rooms", "calls/min", "per room", "by method"], rows),
            MARK[1],
        ]
    )
    publish_section(text, PERFORMANCE, *MARK)


def main(argv: list[str] | None = None) -> int:
    sdk.enable()  # the load generator: many clients, as cheap as the worker's rooms
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_api", description=__doc__)
    parser.add_argument("--rooms", type=int, default=40)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout the workers run from")
    parser.add_argument("--label", default="", help="name of this run in the table")
    parser.add_argument("--publish", action="store_true", help="write docs/performance.md")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.rooms, args.minutes, args.code.resolve()))
    print(json.dumps(result, indent=2))
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    label = args.label or ("this code" if args.code.resolve() == ROOT else str(args.code))
    saved[label] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
    if args.publish:
        publish(saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
