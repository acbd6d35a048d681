"""Helper processes (livekit-server, the local model server): wait for them, stop them."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log_file: Path,
    *,
    what: str,
    timeout: float,
) -> None:
    """Poll `ready` until it holds; bounded by `timeout`.

    Raises RuntimeError if the process exits first, TimeoutError when time runs out;
    both carry the tail of the process's log."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{what} exited ({process.returncode}) at start:\n{tail}")
        if time.monotonic() > deadline:
            tail = log_file.read_text(errors="replace")[-2000:]
            raise TimeoutError(f"{what} was not ready within {timeout:.0f}s:\n{tail}")
        time.sleep(0.05)


def wait_http_ok(
    url: str,
    process: subprocess.Popen[bytes],
    log_file: Path,
    *,
    what: str,
    timeout: float,
    accept: Callable[[bytes], bool] = lambda _: True,
) -> None:
    """Poll `url` until it answers 200 (and `accept`s the body); stops the process on timeout."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return resp.status == 200 and accept(resp.read())
        except OSError:
            return False

    try:
        wait_until(answers, process, log_file, what=what, timeout=timeout)
    except TimeoutError:
        stop_process(process)
        raise
