"""A loopback-only livekit-server for development, tests and benchmarks.

Started from the config the project ships (config/livekit-loopback.yaml) on free
ports; never reachable from outside 127.0.0.1.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import string
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .processes import free_port, stop_process, wait_http_ok

ROOT = Path(__file__).resolve().parents[2]
CONFIG_TEMPLATE = ROOT / "config" / "livekit-loopback.yaml"
INSTALL_HINT = "run scripts/install-livekit-server.sh (or `make setup`)"
# variables that would make the server (or anything it starts) look elsewhere
_SCRUB = (
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "LIVEKIT_KEYS",
    "LIVEKIT_CONFIG",
    "REDIS_HOST",
    "NODE_IP",
    "UDP_PORT",
)


def find_binary() -> Path:
    candidates = [
        os.environ.get("LIVEKIT_SERVER_BIN"),
        str(ROOT / ".tools/bin/livekit-server"),
        shutil.which("livekit-server"),
    ]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    raise FileNotFoundError(f"livekit-server not found: {INSTALL_HINT}")


@dataclass
class DevServer:
    url: str
    api_key: str
    api_secret: str
    process: subprocess.Popen[bytes]
    workdir: Path

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would (the config stays, for `restart`)."""
        self.process.kill()
        self.process.wait(10)

    def restart(self, timeout: float = 30.0) -> None:
        """Start again on the same ports and keys (after `kill`), with no state."""
        self.process = _launch(self.workdir)
        _wait_ready(self, timeout)


def start(
    *,
    log_level: str = "warn",
    timeout: float = 30.0,
    attempts: int = 3,
    webhook: str | None = None,
) -> DevServer:
    """Start the server and wait (bounded) until its health check answers OK. A port
    picked free may be taken before the server binds it (by any process on the box):
    then it starts again on other ports. `webhook`: a URL the server posts its webhook
    events to (signed with the server's key)."""
    for _ in range(attempts - 1):
        try:
            return _start(log_level, timeout, webhook)
        except PortTaken:
            continue
    return _start(log_level, timeout, webhook)


class PortTaken(RuntimeError):
    pass


def _start(log_level: str, timeout: float, webhook: str | None) -> DevServer:
    find_binary()  # fail before making anything, with the install hint
    port, tcp_port, udp_port = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    api_key, api_secret = "devkey", secrets.token_urlsafe(32)
    workdir = Path(tempfile.mkdtemp(prefix="lkbot-server-"))
    config = string.Template(CONFIG_TEMPLATE.read_text()).substitute(
        port=port,
        tcp_port=tcp_port,
        udp_port=udp_port,
        api_key=api_key,
        api_secret=api_secret,
        log_level=log_level,
    )
    if webhook is not None:
        config += f"webhook:\n  api_key: {api_key}\n  urls:\n    - {webhook}\n"
    (workdir / "livekit.yaml").write_text(config)
    server = DevServer(f"ws://127.0.0.1:{port}", api_key, api_secret, _launch(workdir), workdir)
    try:
        _wait_ready(server, timeout)
    except BaseException as e:
        log = (workdir / "livekit-server.log").read_text(errors="replace")
        server.stop()
        if isinstance(e, RuntimeError) and "address already in use" in log:
            raise PortTaken(str(e)) from e
        raise
    return server


def _launch(workdir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    with (workdir / "livekit-server.log").open("ab") as log:
        return subprocess.Popen(
            [str(find_binary()), "--config", str(workdir / "livekit.yaml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def _wait_ready(server: DevServer, timeout: float) -> None:
    wait_http_ok(
        server.url.replace("ws://", "http://") + "/",
        server.process,
        server.workdir / "livekit-server.log",
        what="livekit-server",
        timeout=timeout,
        accept=lambda b: b.strip() == b"OK",
    )
