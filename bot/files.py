"""Files the bot writes that hold other people's words or keys: the owner's alone.

The SQLite conversation store holds every conversation; `.tools/dev.env` holds the
dev server's API secret. Both used to be created with the process's umask (0644 in a
0755 directory: every user of the host could read them). Here a directory the bot
makes is 0700, a file 0600 from the moment it exists (never written first and
narrowed after), and a link planted where the file should be is not followed.
"""

from __future__ import annotations

import os
from pathlib import Path

_FLAGS = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def private_dir(path: Path) -> None:
    """Make `path` (and missing parents) if needed; the ones made here are 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def private_file(path: Path) -> None:
    """`path` exists, as a regular file only its owner can read (made 0600, or narrowed
    to it). Raises OSError where a link or something else than a file stands."""
    fd = os.open(path, _FLAGS, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, 0600 before the first byte is written."""
    fd = os.open(path, _FLAGS | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
