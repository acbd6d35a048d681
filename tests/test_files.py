"""Conversations and keys on disk are the owner's alone (issue: the SQLite file was
0644 in a 0755 directory; `.tools/dev.env` was written before it was made 0600)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from bot.files import write_private
from bot.store import Changes, ConversationKey
from bot.store.sqlite import SQLiteStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_sqlite_store_is_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, whatever the test runner's
    try:
        path = tmp_path / "lkbot" / "conversations.db"

        async def go() -> None:
            store = SQLiteStore(path)
            try:
                await store.apply(ConversationKey("r", "alice"), Changes(seq=1))
            finally:
                await store.aclose()

        asyncio.run(go())
    finally:
        os.umask(old)
    assert _mode(path.parent) == 0o700
    assert _mode(path) == 0o600
    for extra in path.parent.iterdir():  # -wal, -shm: the same mode as the database
        assert _mode(extra) == 0o600, extra.name


def test_an_existing_store_file_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"")
    path.chmod(0o644)

    async def go() -> None:
        store = SQLiteStore(path)
        await store.load(ConversationKey("r", "a"))
        await store.aclose()

    asyncio.run(go())
    assert _mode(path) == 0o600


def test_a_secret_is_never_on_disk_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "dev.env"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "LIVEKIT_API_SECRET=s\n")
    assert _mode(path) == 0o600 and path.read_text() == "LIVEKIT_API_SECRET=s\n"


def test_a_link_planted_where_a_private_file_goes_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    link = tmp_path / "dev.env"
    link.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        write_private(link, "LIVEKIT_API_SECRET=s\n")
    assert victim.read_text() == "keep me"
