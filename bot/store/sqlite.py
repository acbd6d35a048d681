"""The embedded default: one SQLite file (WAL), no server to run.

All calls go through one thread that owns the connection, so the event loop never
waits on the disk. Several processes may share the file (the process executor runs one
per room): WAL lets readers and one writer work at once, and `busy_timeout` queues
writers. Each `apply` is one transaction."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .model import (
    DEFAULT_BOUNDS,
    Bounds,
    Changes,
    ConversationKey,
    ConversationState,
    Lease,
    dumps,
    lease_from,
    now_ms,
    seen_from,
    sent_from,
)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation (
    key TEXT PRIMARY KEY, seq INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    key TEXT NOT NULL, pos INTEGER NOT NULL, item TEXT NOT NULL, PRIMARY KEY (key, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sent (
    key TEXT NOT NULL, seq INTEGER NOT NULL, item TEXT NOT NULL, PRIMARY KEY (key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (
    key TEXT NOT NULL, pos INTEGER NOT NULL, item TEXT NOT NULL, PRIMARY KEY (key, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lease (
    key TEXT NOT NULL, turn TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (key, turn)
) WITHOUT ROWID;
"""
TABLES = ("history", "sent", "seen", "lease", "conversation")


class SQLiteStore:
    def __init__(self, path: str | Path, bounds: Bounds = DEFAULT_BOUNDS) -> None:
        self.path = Path(path)
        self.bounds = bounds
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lkbot-sqlite")
        self._db: sqlite3.Connection | None = None

    # -- the connection's thread --

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at each checkpoint
            db.execute("PRAGMA busy_timeout=10000")
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _expired(self, updated_ms: int) -> bool:
        return bool(self.bounds.ttl_s) and now_ms() - updated_ms > self.bounds.ttl_s * 1000

    def _delete(self, db: sqlite3.Connection, key: str) -> bool:
        gone = db.execute("DELETE FROM conversation WHERE key = ?", (key,)).rowcount
        for table in TABLES[:-1]:
            gone += db.execute(f"DELETE FROM {table} WHERE key = ?", (key,)).rowcount
        return gone > 0

    def _load(self, key: str) -> ConversationState:
        db = self._conn()
        row = db.execute(
            "SELECT seq, updated_ms FROM conversation WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return ConversationState()
        if self._expired(row[1]):
            with db:
                db.execute("BEGIN IMMEDIATE")
                self._delete(db, key)
            return ConversationState()
        q = "SELECT item FROM {} WHERE key = ? ORDER BY {}"
        return ConversationState(
            seq=row[0],
            updated_ms=row[1],
            history=[json.loads(r[0]) for r in db.execute(q.format("history", "pos"), (key,))],
            sent=[sent_from(r[0]) for r in db.execute(q.format("sent", "seq"), (key,))],
            ids=[seen_from(r[0]) for r in db.execute(q.format("seen", "pos"), (key,))],
            leases=[lease_from(r[0]) for r in db.execute(q.format("lease", "turn"), (key,))],
        )

    def _append(
        self, db: sqlite3.Connection, table: str, key: str, items: list[str], keep: int
    ) -> None:
        if not items:
            return
        top = db.execute(
            f"SELECT COALESCE(MAX(pos), 0) FROM {table} WHERE key = ?", (key,)
        ).fetchone()[0]
        db.executemany(
            f"INSERT INTO {table} (key, pos, item) VALUES (?, ?, ?)",
            [(key, top + i + 1, item) for i, item in enumerate(items)],
        )
        db.execute(
            f"DELETE FROM {table} WHERE key = ? AND pos <= ?", (key, top + len(items) - keep)
        )

    def _apply(self, key: str, c: Changes) -> None:
        db = self._conn()
        b = self.bounds
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO conversation (key, seq, updated_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET seq = MAX(seq, excluded.seq), "
                "updated_ms = excluded.updated_ms",
                (key, c.seq or 0, now_ms()),
            )
            if c.history_cleared:
                db.execute("DELETE FROM history WHERE key = ?", (key,))
            self._append(db, "history", key, [dumps(h) for h in c.history], b.history_max)
            self._append(db, "seen", key, [dumps(s) for s in c.ids], b.ids_max)
            if c.sent:
                db.executemany(
                    "INSERT OR REPLACE INTO sent (key, seq, item) VALUES (?, ?, ?)",
                    [(key, s.seq, dumps(s)) for s in c.sent],
                )
                db.execute(
                    "DELETE FROM sent WHERE key = ? AND seq <= ?",
                    (key, c.sent[-1].seq - b.sent_max),
                )
            if c.leases:
                db.executemany(
                    "INSERT OR REPLACE INTO lease (key, turn, item) VALUES (?, ?, ?)",
                    [(key, t, dumps(x)) for t, x in c.leases.items()],
                )
            if c.ended:
                db.executemany(
                    "DELETE FROM lease WHERE key = ? AND turn = ?", [(key, t) for t in c.ended]
                )

    def _lease(self, key: str, turn: str) -> Lease | None:
        row = (
            self._conn()
            .execute("SELECT item FROM lease WHERE key = ? AND turn = ?", (key, turn))
            .fetchone()
        )
        return lease_from(row[0]) if row else None

    def _delete_one(self, key: str) -> bool:
        db = self._conn()
        with db:
            db.execute("BEGIN IMMEDIATE")
            return self._delete(db, key)

    def _keys(self) -> list[ConversationKey]:
        rows = self._conn().execute("SELECT key FROM conversation ORDER BY key")
        return [ConversationKey.decode(r[0]) for r in rows]

    def _purge(self) -> int:
        if not self.bounds.ttl_s:
            return 0
        db = self._conn()
        cutoff = now_ms() - int(self.bounds.ttl_s * 1000)
        old = [
            r[0] for r in db.execute("SELECT key FROM conversation WHERE updated_ms < ?", (cutoff,))
        ]
        with db:
            db.execute("BEGIN IMMEDIATE")
            for key in old:
                self._delete(db, key)
        return len(old)

    # -- the Store API --

    async def load(self, key: ConversationKey) -> ConversationState:
        return await self._run(self._load, key.encoded())

    async def apply(self, key: ConversationKey, changes: Changes) -> None:
        await self._run(self._apply, key.encoded(), changes)

    async def lease(self, key: ConversationKey, turn: str) -> Lease | None:
        return await self._run(self._lease, key.encoded(), turn)

    async def delete(self, key: ConversationKey) -> bool:
        return await self._run(self._delete_one, key.encoded())

    async def keys(self) -> list[ConversationKey]:
        return await self._run(self._keys)

    async def purge_expired(self) -> int:
        return await self._run(self._purge)

    async def aclose(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(close)
        self._pool.shutdown(wait=False)
