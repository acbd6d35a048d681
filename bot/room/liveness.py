"""Which workers are alive: each worker beats a file; a dead one's bots are zombies.

A worker killed with SIGKILL leaves its bot participants in their rooms until
livekit-server's ICE timeout notices (15 s and more). The dispatch watchdog must not
wait for that, and must never take a live bot for a dead one. So a worker is *dead*
only when it is known to be: its heartbeat file names a process that no longer runs
on this machine, or the file has not been touched for `stale_after` seconds. A worker
with no file here (another machine) is *unknown*, and treated as alive.

The beat runs on a thread of its own, so a busy event loop never makes a live worker
look dead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Liveness = Literal["alive", "dead", "unknown"]
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
DEFAULT_DIR = Path(tempfile.gettempdir()) / "lkbot" / "workers"


class WorkerRegistry:
    def __init__(self, directory: Path = DEFAULT_DIR, *, stale_after: float = 10.0) -> None:
        self._dir = directory
        self._stale_after = stale_after

    def _path(self, worker_id: str) -> Path:
        return self._dir / _SAFE.sub("_", worker_id)

    def beat(self, worker_id: str) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(worker_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(path)  # atomic: a reader never sees a half-written pid

    def retire(self, worker_id: str) -> None:
        """A worker that stopped cleanly: dead from now on (its rooms need a new bot)."""
        self._dir.mkdir(parents=True, exist_ok=True)
        self._path(worker_id).write_text("0")

    def forget(self, worker_id: str) -> None:
        self._path(worker_id).unlink(missing_ok=True)

    def prune(self, older_than: float = 24 * 3600) -> None:
        """Remove the files of workers gone for long (they only ever pile up)."""
        cutoff = time.time() - older_than
        for path in self._dir.glob("*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    def state(self, worker_id: str, now: float | None = None) -> Liveness:
        path = self._path(worker_id)
        try:
            stat = path.stat()
            pid = int(path.read_text().strip() or "0")
        except (FileNotFoundError, ValueError):
            return "unknown"
        now = time.time() if now is None else now
        if now - stat.st_mtime > self._stale_after or not _running(pid):
            return "dead"
        return "alive"


def _running(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class Heartbeat:
    """Beats `worker_id` every `interval` seconds on a daemon thread until stopped."""

    def __init__(self, registry: WorkerRegistry, worker_id: str, interval: float) -> None:
        self._registry = registry
        self._worker_id = worker_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lkbot-heartbeat", daemon=True)

    def start(self) -> None:
        self._registry.beat(self._worker_id)
        self._registry.prune()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._registry.beat(self._worker_id)
            except OSError as e:  # a full disk must not kill the worker
                log.warning("heartbeat not written: %s", e)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._interval + 1)
        with contextlib.suppress(OSError):
            self._registry.retire(self._worker_id)
