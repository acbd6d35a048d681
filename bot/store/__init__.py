"""Where conversations are kept: SQLite (default), Redis (many workers), memory (tests).

`BOT_STORE` picks it: empty or `sqlite:///path/to/file.db` (default
`$XDG_DATA_HOME/lkbot/conversations.db`), `redis://host:port/db`, or `memory`."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Settings
from .base import Store
from .memory import MemoryStore
from .model import (
    DEFAULT_BOUNDS,
    Bounds,
    Changes,
    Claim,
    ConversationKey,
    ConversationState,
    Lease,
    SeenId,
    SentRecord,
    Stale,
)

__all__ = [
    "Bounds",
    "Changes",
    "Claim",
    "ConversationKey",
    "ConversationState",
    "Lease",
    "MemoryStore",
    "SeenId",
    "SentRecord",
    "Stale",
    "Store",
    "default_sqlite_path",
    "describe",
    "from_settings",
    "open_store",
]


def default_sqlite_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lkbot" / "conversations.db"


def _sqlite_path(url: str) -> Path:
    path = url.removeprefix("sqlite://")
    # sqlite:///abs/path → /abs/path; sqlite://rel/path → rel/path
    return Path(path) if path else default_sqlite_path()


def describe(url: str) -> str:
    """What `url` means, for logs (no password)."""
    if url == "memory":
        return "memory (nothing survives the process)"
    if url.startswith(("redis://", "rediss://", "unix://")):
        host = url.split("@")[-1].split("://")[-1]
        return f"redis {host}"
    return f"sqlite {_sqlite_path(url) if url else default_sqlite_path()}"


def open_store(url: str, bounds: Bounds = DEFAULT_BOUNDS) -> Store:
    if url == "memory":
        return MemoryStore(bounds)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisStore

        return RedisStore(url, bounds)
    if not url or url.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        return SQLiteStore(_sqlite_path(url) if url else default_sqlite_path(), bounds)
    raise ValueError(
        f"BOT_STORE: {url!r} is not a store; use sqlite:///path/file.db, "
        "redis://host:port/0 or memory"
    )


def from_settings(settings: Settings) -> Store:
    """The store `BOT_STORE` names, bounded by the conversation settings."""
    return open_store(
        settings.store,
        Bounds(
            history_max=settings.history_max_items,
            sent_max=settings.resume_window,
            sent_max_bytes=settings.resume_window_bytes,
            ids_max=settings.dedupe_window,
            ttl_s=settings.store_ttl,
            max_conversations=settings.store_max_conversations,
        ),
    )
