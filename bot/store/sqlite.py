"""The embedded default: one SQLite file (WAL), no server to run.

All calls go through one thread that owns the connection, so the event loop never
waits on the disk. Several processes may share the file (the process executor runs one
per room): WAL lets readers and one writer work at once, and `busy_timeout` queues
writers. Each `apply` is one transaction, and checks the writer's fencing token in it:
`claim` takes the next token from a counter row that is never deleted (so a token is
never given twice, whatever is deleted) and stores it with the conversation; a batch
whose token is not the conversation's is refused (`Stale`) and nothing of it written."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..files import private_dir, private_file
from .model import (
    DEFAULT_BOUNDS,
    FORGET_MS,
    Bounds,
    Changes,
    Claim,
    ConversationKey,
    ConversationState,
    Stale,
    dumps,
    lease_from,
    now_ms,
    seen_from,
    sent_from,
    sent_size,
)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation (
    key TEXT PRIMARY KEY, seq INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL,
    fence INTEGER NOT NULL DEFAULT 0, owner TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fence_counter (
    id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER NOT NULL
);
INSERT OR IGNORE INTO fence_counter (id, value) VALUES (0, 0);
CREATE TABLE IF NOT EXISTS worker (id TEXT PRIMARY KEY, until_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS served (
    worker TEXT NOT NULL, room TEXT NOT NULL, PRIMARY KEY (worker, room)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leader (
    role TEXT PRIMARY KEY, owner TEXT NOT NULL, until_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    key TEXT NOT NULL, pos INTEGER NOT NULL, item TEXT NOT NULL, PRIMARY KEY (key, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sent (
    key TEXT NOT NULL, seq INTEGER NOT NULL, item TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key, seq)
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
            private_dir(self.path.parent)
            private_file(self.path)  # SQLite gives its -wal and -shm the same mode
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at each checkpoint
            db.execute("PRAGMA busy_timeout=10000")
            db.executescript(SCHEMA)
            for table, column, decl in (  # a file from before fencing, or byte bounds
                ("conversation", "fence", "INTEGER NOT NULL DEFAULT 0"),
                ("conversation", "owner", "TEXT NOT NULL DEFAULT ''"),
                ("conversation", "claimed_ms", "INTEGER NOT NULL DEFAULT 0"),
                ("sent", "size", "INTEGER NOT NULL DEFAULT 0"),
            ):
                columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in columns:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            db.execute(
                "CREATE INDEX IF NOT EXISTS conversation_claimed ON conversation (claimed_ms)"
            )
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
        with db:
            db.execute("BEGIN")
            return self._read(db, key)

    def _read(self, db: sqlite3.Connection, key: str) -> ConversationState:
        row = db.execute(
            "SELECT seq, updated_ms FROM conversation WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return ConversationState()
        if self._expired(row[1]):
            return ConversationState()  # deleted by the next claim or purge
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

    def _claim(self, key: str, owner: str) -> Claim:
        db = self._conn()
        with db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT updated_ms FROM conversation WHERE key = ?", (key,)).fetchone()
            if row is not None and self._expired(row[0]):
                self._delete(db, key)
            fence = db.execute(
                "UPDATE fence_counter SET value = value + 1 WHERE id = 0 RETURNING value"
            ).fetchone()[0]
            db.execute(
                "INSERT INTO conversation (key, updated_ms, fence, owner, claimed_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET fence = excluded.fence, "
                "owner = excluded.owner, claimed_ms = excluded.claimed_ms",
                (key, now_ms(), fence, owner, fence),  # tokens only grow: an order of claims
            )
            if row is None and self.bounds.max_conversations:
                self._evict(db, self.bounds.max_conversations)
            return Claim(fence, self._read(db, key))

    def _evict(self, db: sqlite3.Connection, cap: int) -> None:
        """Over `cap` conversations: delete the least recently claimed."""
        over = db.execute("SELECT COUNT(*) FROM conversation").fetchone()[0] - cap
        if over > 0:
            oldest = db.execute(
                "SELECT key FROM conversation ORDER BY claimed_ms LIMIT ?", (over,)
            ).fetchall()
            for (old,) in oldest:
                self._delete(db, old)

    def _apply(self, key: str, c: Changes) -> None:
        db = self._conn()
        b = self.bounds
        with db:
            db.execute("BEGIN IMMEDIATE")
            if c.fence is not None:
                row = db.execute("SELECT fence FROM conversation WHERE key = ?", (key,)).fetchone()
                if row is None or row[0] != c.fence:
                    raise Stale(f"conversation {key} was claimed by another writer")
            db.execute(
                "INSERT INTO conversation (key, seq, updated_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET seq = MAX(seq, excluded.seq), "
                "updated_ms = excluded.updated_ms",
                (key, c.seq or 0, now_ms()),
            )
            if c.history_cleared:
                db.execute("DELETE FROM history WHERE key = ?", (key,))
            if c.sent_cleared:
                db.execute("DELETE FROM sent WHERE key = ?", (key,))
            if c.ids_forgotten:
                db.execute(
                    "UPDATE seen SET item = json_set(item, '$.print', '') WHERE key = ?", (key,)
                )
            self._append(db, "history", key, [dumps(h) for h in c.history], b.history_max)
            self._append(db, "seen", key, [dumps(s) for s in c.ids], b.ids_max)
            if c.sent:
                db.executemany(
                    "INSERT INTO sent (key, seq, item, size) VALUES (?, ?, ?, ?)",
                    [(key, s.seq, dumps(s), sent_size(s)) for s in c.sent],
                )
                self._trim_sent(db, key)
            if c.leases:
                db.executemany(
                    "INSERT OR REPLACE INTO lease (key, turn, item) VALUES (?, ?, ?)",
                    [(key, t, dumps(x)) for t, x in c.leases.items()],
                )
            if c.ended:
                db.executemany(
                    "DELETE FROM lease WHERE key = ? AND turn = ?", [(key, t) for t in c.ended]
                )

    def _trim_sent(self, db: sqlite3.Connection, key: str) -> None:
        """Keep the newest within both bounds (count and bytes), as `trim_sent` does.
        Runs on every write: the totals are one indexed aggregate, and only the records
        that go are read one by one (oldest first, until both bounds hold)."""
        b = self.bounds
        count, total = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM sent WHERE key = ?", (key,)
        ).fetchone()
        if count <= b.sent_max and total <= b.sent_max_bytes:
            return
        last = None
        for seq, size in db.execute(
            "SELECT seq, size FROM sent WHERE key = ? ORDER BY seq", (key,)
        ):
            if count <= b.sent_max and total <= b.sent_max_bytes:
                break
            last, count, total = seq, count - 1, total - size
        if last is not None:
            db.execute("DELETE FROM sent WHERE key = ? AND seq <= ?", (key, last))

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

    def _beat(self, worker: str, ttl_ms: int) -> dict[str, int]:
        db = self._conn()
        now = now_ms()
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO worker (id, until_ms) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET until_ms = excluded.until_ms",
                (worker, now + ttl_ms),
            )
            db.execute("DELETE FROM worker WHERE until_ms < ?", (now - FORGET_MS,))
            return {w: until - now for w, until in db.execute("SELECT id, until_ms FROM worker")}

    def _lead(self, role: str, owner: str, ttl_ms: int) -> bool:
        db = self._conn()
        now = now_ms()
        with db:
            db.execute("BEGIN IMMEDIATE")
            taken = db.execute(
                "INSERT INTO leader (role, owner, until_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (role) DO UPDATE SET owner = excluded.owner, "
                "until_ms = excluded.until_ms WHERE leader.owner = excluded.owner "
                "OR leader.until_ms <= ?",
                (role, owner, now + ttl_ms, now),
            ).rowcount
        return taken > 0

    def _write(self, sql: str, *args: str) -> None:
        db = self._conn()
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(sql, args)

    def _rooms_of(self, worker: str) -> list[str]:
        rows = self._conn().execute(
            "SELECT room FROM served WHERE worker = ? ORDER BY room", (worker,)
        )
        return [r[0] for r in rows]

    # -- the Store API --

    async def load(self, key: ConversationKey) -> ConversationState:
        return await self._run(self._load, key.encoded())

    async def apply(self, key: ConversationKey, changes: Changes) -> None:
        await self._run(self._apply, key.encoded(), changes)

    async def claim(self, key: ConversationKey, owner: str) -> Claim:
        return await self._run(self._claim, key.encoded(), owner)

    async def delete(self, key: ConversationKey) -> bool:
        return await self._run(self._delete_one, key.encoded())

    async def beat(self, worker: str, ttl_ms: int) -> dict[str, int]:
        return await self._run(self._beat, worker, ttl_ms)

    async def lead(self, role: str, owner: str, ttl_ms: int) -> bool:
        return await self._run(self._lead, role, owner, ttl_ms)

    async def serve_room(self, room: str, worker: str) -> None:
        sql = "INSERT OR IGNORE INTO served (worker, room) VALUES (?, ?)"
        await self._run(self._write, sql, worker, room)

    async def left_room(self, room: str, worker: str) -> None:
        await self._run(
            self._write, "DELETE FROM served WHERE worker = ? AND room = ?", worker, room
        )

    async def rooms_of(self, worker: str) -> list[str]:
        return await self._run(self._rooms_of, worker)

    async def forget_rooms(self, worker: str) -> None:
        await self._run(self._write, "DELETE FROM served WHERE worker = ?", worker)

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
