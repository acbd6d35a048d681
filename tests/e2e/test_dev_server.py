"""The dev livekit-server picks free ports; one may be taken before it binds it (seen in
CI: `bind: address already in use`). It then starts again on other ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from bot.dev import livekit_server
from bot.dev.processes import free_port


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_port_taken_before_the_server_binds_it(
    taken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([taken])  # the first pick (the signal port) is the taken one

    def pick(kind: int = socket.SOCK_STREAM) -> int:
        return next(picks, None) or free_port(kind)

    monkeypatch.setattr(livekit_server, "free_port", pick)
    server = livekit_server.start()
    try:
        assert server.url != f"ws://127.0.0.1:{taken}"
        assert server.process.poll() is None
    finally:
        server.stop()
