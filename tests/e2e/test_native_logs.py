"""livekit.rtc hands every native log record to Python (libwebrtc's VERBOSE ones too),
where they are dropped: `native_logs.quiet()` stops that, and the room still works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.dev import livekit_server


def probe(lk: livekit_server.DevServer, mode: str, path: str | None = None) -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if k not in ("LIVEKIT_RTC_DEBUG", "RUST_LOG")}
    env.update(LIVEKIT_URL=lk.url, LIVEKIT_API_KEY=lk.api_key, LIVEKIT_API_SECRET=lk.api_secret)
    if path is not None:
        env["PATH"] = path
    out = subprocess.run(
        [sys.executable, "-m", "tests.e2e.native_logs_probe", mode],
        env=env,
        cwd=livekit_server.ROOT,
        capture_output=True,
        timeout=120,
        check=True,
    )
    counts: dict[str, int] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return counts


@pytest.mark.timeout(300)
def test_quiet_keeps_native_logs_out_of_python(lk: livekit_server.DevServer) -> None:
    sdk = probe(lk, "sdk")
    # as the SDK sets it up: one connect sends hundreds of log events across
    assert sdk.get("logs", 0) > 100, sdk
    quiet = probe(lk, "quiet")
    # at most the record(s) already on their way when capture stopped ("initializing")
    assert quiet.get("logs", 0) <= 2, quiet
    # the same callback still gets the room's own events: the room worked
    assert quiet.get("room_event", 0) > 0 and quiet.get("connect", 0) == 1, quiet


def test_rtc_debug_keeps_the_sdk_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.sdk import native_logs

    monkeypatch.setenv("LIVEKIT_RTC_DEBUG", "1")
    monkeypatch.setattr(native_logs, "_quiet", False)
    assert native_logs.quiet() is False


@pytest.mark.timeout(300)
def test_quiet_connects_without_running_lsb_release(
    lk: livekit_server.DevServer, tmp_path: Path
) -> None:
    """The SDK's OS probe runs `lsb_release` on every connect; after quiet() it is not
    run (os_probe.py), and the connect still works."""
    runs = tmp_path / "runs"
    spy = tmp_path / "bin" / "lsb_release"
    spy.parent.mkdir()
    spy.write_text(f"#!/bin/sh\necho run >> {runs}\necho 'Distributor ID: Debian'\n")
    spy.chmod(0o755)
    path = f"{spy.parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    probe(lk, "sdk", path)
    assert runs.exists() and len(runs.read_text().splitlines()) >= 1  # the spy sees the SDK's
    runs.unlink()
    quiet = probe(lk, "quiet", path)
    assert not runs.exists(), runs.read_text()
    assert quiet.get("connect", 0) == 1, quiet
