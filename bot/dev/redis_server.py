"""A throwaway `redis-server` on a free loopback port (tests, benchmarks, `bot up --redis`).

Debian's `redis-server` package (scripts/install-redis.sh installs it). Nothing is
written to disk: no RDB snapshots, no AOF."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .processes import free_port, stop_process


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process, 10)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


def binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        raise FileNotFoundError(
            "redis-server is not installed: run scripts/install-redis.sh (Debian: "
            "apt-get install redis-server)"
        )
    return found


def start(port: int | None = None, timeout: float = 30.0) -> RedisServer:
    port = port or free_port()
    log = Path(tempfile.mkstemp(prefix="lkbot-redis-", suffix=".log")[1])
    args = [
        binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = RedisServer(port, proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise TimeoutError(f"redis-server did not answer on port {port} within {timeout:g}s")
