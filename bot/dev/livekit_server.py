"""A loopback-only livekit-server for development, tests and benchmarks.

Started from the config the package ships (bot/dev/livekit-loopback.yaml) on free
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
from urllib.parse import urlparse

from .processes import free_port, stop_process, wait_http_ok

ROOT = Path(__file__).resolve().parents[2]
CONFIG_TEMPLATE = Path(__file__).resolve().parent / "livekit-loopback.yaml"
INSTALL_HINT = (
    "set LIVEKIT_SERVER_BIN to a livekit-server binary or put one on PATH; in a checkout "
    "of lkbot, scripts/install-livekit-server.sh (or `make setup`) builds one into .tools/bin"
)
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
    node_id: str = ""  # in a cluster (`start_cluster`): the node's id, for CreateRoom
    redis: str | None = None  # in a cluster: LiveKit's Redis

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would (the config stays, for `restart`)."""
        self.process.kill()
        self.process.wait(10)

    def restart(self, timeout: float = 30.0) -> None:
        """Start again on the same ports and keys (after `kill`), with no state (in a
        cluster: a new node, with a new id)."""
        before = _node_ids(self.redis) if self.redis else set()
        self.process = _launch(self.workdir)
        _wait_ready(self, timeout)
        if self.redis:
            self.node_id = _new_node(self.redis, before)


def start(
    *,
    log_level: str = "warn",
    timeout: float = 30.0,
    attempts: int = 3,
    webhook: str | None = None,
    redis: str | None = None,
    keys: tuple[str, str] | None = None,
    prometheus_port: int | None = None,
) -> DevServer:
    """Start the server and wait (bounded) until its health check answers OK. A port
    picked free may be taken before the server binds it (by any process on the box):
    then it starts again on other ports. `webhook`: a URL the server posts its webhook
    events to (signed with the server's key). `redis` (`redis://host:port/db`): run in
    LiveKit's distributed mode on that Redis, with `keys` (key, secret) shared by every
    node (see `start_cluster`). `prometheus_port`: serve the server's own metrics there
    (e.g. its API calls, `livekit_node_twirp_request_status`)."""
    extra = f"prometheus:\n  port: {prometheus_port}\n" if prometheus_port else ""
    for _ in range(attempts - 1):
        try:
            return _start(log_level, timeout, webhook, redis, keys, extra)
        except PortTaken:
            continue
    return _start(log_level, timeout, webhook, redis, keys, extra)


def start_cluster(redis_url: str, nodes: int = 2, *, log_level: str = "warn") -> list[DevServer]:
    """LiveKit's own multi-node mode on loopback: `nodes` livekit-servers sharing one
    Redis (same keys, the same `redis:` section, their own ports). A participant may
    join through any node; its signal is relayed to the room's node. Each node's id
    (read from LiveKit's `nodes` hash as it appears) pins rooms with CreateRoom."""
    keys = ("devkey", secrets.token_urlsafe(32))
    started: list[DevServer] = []
    try:
        for _ in range(nodes):
            before = _node_ids(redis_url)
            server = start(log_level=log_level, redis=redis_url, keys=keys)
            started.append(server)
            server.redis = redis_url
            server.node_id = _new_node(redis_url, before)
    except BaseException:
        for server in started:
            server.stop()
        raise
    return started


def _new_node(redis_url: str, before: set[str]) -> str:
    new = _node_ids(redis_url) - before
    if len(new) != 1:
        raise RuntimeError(f"could not tell the new node's id: {sorted(new)}")
    return new.pop()


def _node_ids(redis_url: str) -> set[str]:
    """The node ids in LiveKit's `nodes` hash (its routing table in Redis)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return {k.decode() for k in client.hkeys("nodes")}  # type: ignore[union-attr]
    finally:
        client.close()


class PortTaken(RuntimeError):
    pass


def _start(
    log_level: str,
    timeout: float,
    webhook: str | None,
    redis: str | None,
    keys: tuple[str, str] | None,
    extra: str = "",
) -> DevServer:
    find_binary()  # fail before making anything, with the install hint
    port, tcp_port, udp_port = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    api_key, api_secret = keys or ("devkey", secrets.token_urlsafe(32))
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
    config += extra
    if redis is not None:
        parsed = urlparse(redis)
        db = parsed.path.strip("/") or "0"
        config += f"redis:\n  address: {parsed.hostname}:{parsed.port}\n  db: {db}\n"
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
