"""What the conversation store costs: write latency per batch and bytes per item.

`python -m bench.store [--publish]`: SQLite (a file in /tmp), Redis (a throwaway
redis-server on loopback) and memory, each given the batches a turn makes (one user
history item, then the turn's messages in batches as the journal sends them), and the
bytes each backend holds per history item and per message kept for resume."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.dev import redis_server
from bot.store import Changes, ConversationKey, SentRecord, Store, open_store

from .report import machine, publish_section
from .stack import nearest_rank

MARK_START, MARK_END = "<!-- store:start -->", "<!-- store:end -->"
DELTA = '{"v":1,"type":"turn.delta","id":"b12-a1b2c3","seq":12,"ts":1795305658905,"turn":"t_0a1b2c3d4e5f","reply_to":"c7","text":"some words of a reply "}'  # noqa: E501
TEXT = "x" * 200
ITEM = {
    "role": "assistant",
    "text": TEXT,
    "ts": 1795305658905,
    "turn": "t_0a1b2c3d4e5f",
    "metadata": None,
}


async def _latency(store: Store, n: int = 300) -> tuple[float, float]:
    key = ConversationKey("bench", f"u{time.time_ns()}")
    times = []
    seq = 0
    fence = (await store.claim(key, "bench")).fence  # every write checks it, as a bot's does
    for i in range(n):
        batch = Changes(fence=fence, history=[ITEM] if i % 10 == 0 else [])
        for _ in range(4):  # a batch of four messages: what piles up during one write
            seq += 1
            batch.sent.append(SentRecord(seq, f"b{seq}", "lkbot", DELTA))
        batch.seq = seq
        t = time.perf_counter()
        await store.apply(key, batch)
        times.append((time.perf_counter() - t) * 1000)
    return _p50_p99(times)


def _p50_p99(times: list[float]) -> tuple[float, float]:
    p99 = nearest_rank(times, 0.99)
    assert p99 is not None, "no times"
    return statistics.median(times), p99


async def _hot_path(url: str, n: int = 20000) -> tuple[float, float]:
    """µs per message a conversation spends *before* a packet goes out (stamping,
    encoding, and with a store the journal's synchronous record), without and with it."""
    from bot.protocol.outbound import TurnDelta
    from bot.state.journal import Journal
    from bot.state.outbox import Outbox
    from bot.testing.memory import MemoryTransport

    out = []
    for with_store in (False, True):
        store = open_store(url)
        journal = (
            Journal(store, ConversationKey("bench", f"hot{time.time_ns()}")) if with_store else None
        )
        if journal is not None:
            await journal.claim()
        outbox = Outbox(MemoryTransport(), "u", max_packet=15000, journal=journal)
        msg = TurnDelta(turn="t_0a1b2c3d4e5f", reply_to="c7", text="some words of a reply ")
        t = time.perf_counter()
        for _ in range(n):  # no await: neither the pump nor the store's writer runs here
            outbox.put(msg, "lkbot")
        out.append((time.perf_counter() - t) / n * 1e6)
        await outbox.aclose()
        if journal is not None:
            await journal.aclose(timeout=60)
        await store.aclose()
    return out[0], out[1]


class _Stamp:
    """A transport that notes when each packet left."""

    def __init__(self) -> None:
        self.left = asyncio.Event()
        self.at = 0.0

    async def send(self, identity: str, topic: str, payload: str) -> None:
        self.at = time.perf_counter()
        self.left.set()

    def peers(self) -> list[Any]:
        return []

    def peer(self, identity: str) -> Any:
        return None


async def _departure(url: str | None, n: int = 300) -> tuple[float, float]:
    """ms from `put` to the transport's send of a lone message (what a first text waits
    for): the outbox publishes a message once the journal has written it. `url` None:
    an outbox with no journal, the floor."""
    from bot.protocol.outbound import TurnDelta
    from bot.state.journal import Journal
    from bot.state.outbox import Outbox

    key = ConversationKey("bench", f"dep{time.time_ns()}")
    journal = Journal(open_store(url), key) if url else None
    if journal is not None:
        await journal.claim()
    transport = _Stamp()
    outbox = Outbox(transport, "u", max_packet=15000, journal=journal)
    msg = TurnDelta(turn="t_0a1b2c3d4e5f", reply_to="c7", text="some words of a reply ")
    times = []
    for _ in range(n):
        transport.left.clear()
        t = time.perf_counter()
        outbox.put(msg, "lkbot")
        await transport.left.wait()
        times.append((transport.at - t) * 1000)
        if journal is not None:  # the next one starts on an idle writer, as a first text does
            await journal.flush()
    await outbox.aclose()
    if journal is not None:
        await journal.aclose()
        await journal.store.aclose()
    return _p50_p99(times)


def _db_size(path: Path) -> int:
    """The file's size with the WAL folded in and free pages dropped."""
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    db.close()
    return path.stat().st_size


async def _bytes_sqlite(path: Path, items: int) -> tuple[float, float]:
    store = open_store(f"sqlite://{path}")
    await store.apply(ConversationKey("b", "empty"), Changes(seq=1))
    await store.aclose()
    base = _db_size(path)
    out = []
    for kind in ("history", "sent"):
        store = open_store(f"sqlite://{path}")
        key = ConversationKey("b", kind)
        for i in range(items // 100):
            c = Changes(seq=(i + 1) * 100)
            if kind == "history":
                c.history = [ITEM] * 100
            else:
                c.sent = [SentRecord(i * 100 + j + 1, "b", "lkbot", DELTA) for j in range(100)]
            await store.apply(key, c)
        await store.aclose()
        size = _db_size(path)
        out.append((size - base) / items)
        base = size
    return out[0], out[1]


async def _bytes_redis(url: str, items: int) -> tuple[float, float]:
    from redis.asyncio import Redis

    r = Redis.from_url(url)
    out = []
    for kind in ("history", "sent"):
        store = open_store(url)
        key = ConversationKey("b", kind)
        c = Changes(seq=items)
        if kind == "history":
            c.history = [ITEM] * items
        else:
            c.sent = [SentRecord(j + 1, "b", "lkbot", DELTA) for j in range(items)]
        await store.apply(key, c)
        await store.aclose()
        used = await r.memory_usage(f"lkbot:{{{key.encoded()}}}:{kind}")
        out.append((used or 0) / items)
    await r.aclose()
    return out[0], out[1]


def turns_over_livekit(redis_url: str, tmp: Path, users: int, turns: int, rounds: int) -> list[Row]:
    """Our worker with each store, the same load: `users` users in rooms of their own,
    `turns` instant turns each, over a real livekit-server. Rounds alternate the
    stores, so that a busy moment of the box does not land on one store only."""
    from bot.dev.processes import stop_process, wait_until

    from .run import PROFILES, run_load, summarize
    from .stack import TreeSampler, start_server_and_llm

    stores = (
        ("memory", "memory"),
        ("sqlite", f"sqlite://{tmp / 'turns.db'}"),
        ("redis", redis_url),
    )
    stack = start_server_and_llm()
    rows: list[Row] = []
    try:
        for n in range(rounds):
            for name, url in stores:
                agent = f"store-{name}"
                ready = stack.logdir / f"{name}-{n}.ready"
                proc = stack.spawn(
                    ["-m", "bot", "start", "--ready-file", str(ready)],
                    f"{name}-{n}",
                    OPENAI_BASE_URL=stack.llm_url,
                    BOT_MODEL="scripted",
                    BOT_HTTP_PORT="0",
                    BOT_AGENT_NAME=agent,
                    BOT_STORE=url,
                    BOT_LOG_LEVEL="WARNING",
                )
                wait_until(
                    ready.exists, proc, stack.logdir / f"{name}-{n}.log", what=name, timeout=120
                )
                sampler = TreeSampler(proc.pid)
                rooms = [f"{agent}-{n}-{i}-{time.time_ns()}" for i in range(users)]
                plan = [{"profile": "instant", "text": PROFILES["instant"]["text"], "turns": turns}]
                try:
                    recs, errs = run_load(stack, "ours", rooms, plan, agent)
                    row = summarize(recs, errs, users, sampler, sampler.mem_now())
                finally:
                    sampler.stop()
                    stop_process(proc, 30)
                rows.append(Row(name, n + 1, row))
                print(
                    f"  round {n + 1}, {name}: first text p50 {row['first_p50']:.1f} ms, "
                    f"p99 {row['first_p99']:.1f} ms, CPU {row.get('cpu_ms_per_turn', 0):.1f} "
                    f"ms/turn, {row['turns']} turns, {row['errors']} errors "
                    f"{row['error_samples'] or ''}",
                    flush=True,
                )
    finally:
        stack.close()
    return rows


@dataclass
class Row:
    store: str
    round: int
    row: dict[str, Any]


def turns_table(rows: list[Row]) -> list[str]:
    lines = [
        "| store | round | first text p50 / p99 (ms) | end p50 / p99 (ms) | worker CPU ms/turn "
        "| turns | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        x = r.row
        lines.append(
            f"| {r.store} | {r.round} | {x['first_p50']:.1f} / {x['first_p99']:.1f} "
            f"| {x['end_p50']:.1f} / {x['end_p99']:.1f} | {x.get('cpu_ms_per_turn', 0):.1f} "
            f"| {x['turns']} | {x['errors']} |"
        )
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r.store, []).append(r.row["first_p50"])
    base = statistics.median(by["memory"])
    added = ", ".join(
        f"{name} {statistics.median(v) - base:+.1f} ms"
        for name, v in by.items()
        if name != "memory"
    )
    return [*lines, "", f"First text p50 against memory (median of the rounds): {added}."]


async def run(users: int, turns: int, rounds: int) -> str:
    redis = redis_server.start()
    tmp = Path(tempfile.mkdtemp(prefix="lkbot-store-bench-"))
    rows = []
    floor = await _departure(None)
    print(f"  put -> sent without a store: p50 {floor[0]:.3f} ms, p99 {floor[1]:.3f} ms")
    try:
        for name, url in (
            ("memory", "memory"),
            ("sqlite", f"sqlite://{tmp / 'lat.db'}"),
            ("redis", redis.url),
        ):
            store = open_store(url)
            p50, p99 = await _latency(store)
            await store.aclose()
            hot = await _hot_path(url)
            dep = await _departure(url)
            rows.append((name, p50, p99, hot, dep))
            print(
                f"  {name}: batch write p50 {p50:.3f} ms, p99 {p99:.3f} ms; put -> sent "
                f"p50 {dep[0]:.3f} ms, p99 {dep[1]:.3f} ms; recording "
                f"{hot[0]:.1f} µs/message without the store, {hot[1]:.1f} with it",
                flush=True,
            )
        n = 200  # = BOT_HISTORY_MAX_ITEMS, so nothing is trimmed
        sq = await _bytes_sqlite(tmp / "size.db", n)
        rd = await _bytes_redis(redis.url, n)
        print(f"turns over LiveKit: {users} users x {turns} turns, {rounds} rounds", flush=True)
        loop = asyncio.get_running_loop()
        turn_rows = await loop.run_in_executor(
            None, turns_over_livekit, redis.url, tmp, users, turns, rounds
        )
    finally:
        redis.stop()
    lines = [
        f"{MARK_START}\n## Conversation store\n\n`python -m bench.store` on {machine()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, pid {os.getpid()}. One batch = what the journal "
        "writes at once during a streamed turn: four bot messages (a `turn.delta` of "
        f"{len(DELTA)} bytes of JSON each), plus a history item every tenth batch. A message "
        "is published once the batch holding it is written (what a client has, the store "
        "has): *put → sent* is that wait for a lone message, as a turn's first text has it "
        "(the journal's writer idle). *Recording* is the synchronous part of `put` (stamping, "
        "encoding, the journal's record), 20,000 messages without an await. Without a store, "
        f"put → sent is {floor[0]:.3f} / {floor[1]:.3f} ms (p50 / p99).\n",
        "| store | batch write p50 (ms) | p99 (ms) | put → sent p50 / p99 (ms) "
        "| recording, µs/message: no store / this store |",
        "|---|---|---|---|---|",
        *[
            f"| {n_} | {a:.3f} | {b:.3f} | {d[0]:.3f} / {d[1]:.3f} | {h[0]:.1f} / {h[1]:.1f} |"
            for n_, a, b, h, d in rows
        ],
        "",
        f"Bytes held per item ({len(TEXT)}-character history item; "
        f"{len(DELTA)}-byte message kept for resume):\n",
        "| store | per history item | per message kept for resume |",
        "|---|---|---|",
        f"| sqlite (file size, after VACUUM) | {sq[0]:.0f} | {sq[1]:.0f} |",
        f"| redis (MEMORY USAGE of the list) | {rd[0]:.0f} | {rd[1]:.0f} |",
        "",
        f"Turns over a real livekit-server with each store: our worker (`python -m bot start`, "
        f"`BOT_STORE` set), {users} users each in a room of their own, {turns} turns each "
        "with the `instant` LLM profile (no think time, a 10-token reply), the same scripted "
        "LLM; the stores alternate over the rounds.\n",
        *turns_table(turn_rows),
        f"\n{MARK_END}\n",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publish", action="store_true", help="write docs/performance.md")
    parser.add_argument("--users", type=int, default=10, help="users in the turns part")
    parser.add_argument("--turns", type=int, default=40, help="turns per user")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the three stores")
    args = parser.parse_args()
    text = asyncio.run(run(args.users, args.turns, args.rounds))
    print(text)
    if args.publish:
        path = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
        publish_section(text, path, MARK_START, MARK_END)


if __name__ == "__main__":
    main()
