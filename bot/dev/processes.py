"""Helper processes (livekit-server, the local model server, test workers): free ports
for them, wait for them, stop them."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on 127.0.0.1 right now (TCP by default).

    Chosen below the kernel's ephemeral range, so that no outgoing connection is
    handed it by chance: a server restarted on its old ports finds them free."""
    high = max(_ephemeral_low() - 1, 11000)
    for _ in range(200):
        port = random.randint(10000, high)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, kind) as s:  # crowded: any free port
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; returns the exit code.

    A process started with `start_new_session=True` leads its own process group: the
    SIGKILL then reaches its children too (a worker's job processes)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(process.pid) == process.pid:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    process.kill()
            process.wait(timeout)
    return process.returncode


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
