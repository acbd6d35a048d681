"""livekit.rtc hands every native log record to Python (libwebrtc's VERBOSE ones too),
where they are dropped: `native_logs.quiet()` stops that, and the room still works."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bot.dev import livekit_server


def probe(lk: livekit_server.DevServer, mode: str) -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if k not in ("LIVEKIT_RTC_DEBUG", "RUST_LOG")}
    env.update(LIVEKIT_URL=lk.url, LIVEKIT_API_KEY=lk.api_key, LIVEKIT_API_SECRET=lk.api_secret)
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
    from bot.room import native_logs

    monkeypatch.setenv("LIVEKIT_RTC_DEBUG", "1")
    monkeypatch.setattr(native_logs, "_quiet", False)
    assert native_logs.quiet() is False
