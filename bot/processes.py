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


def wait_http_ok(
    url: str,
    process: subprocess.Popen[bytes],
    log_file: Path,
    *,
    what: str,
    timeout: float,
    accept: Callable[[bytes], bool] = lambda _: True,
) -> None:
    """Poll `url` until it answers 200 (and `accept`s the body); bounded by `timeout`.

    Raises RuntimeError with the log's tail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{what} exited ({process.returncode}) at start:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200 and accept(resp.read()):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    stop_process(process)
    raise TimeoutError(f"{what} was not ready within {timeout:.0f}s")
