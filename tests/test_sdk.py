"""The SDK patches (bot.sdk) are opt-in and guarded by the SDK's version: importing
the client library changes nothing in the process; `enable()` patches a supported SDK
and leaves any other stock. Each case runs in a fresh interpreter."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bot.sdk import os_probe

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import os
from livekit.rtc._ffi_client import FfiClient
from bot.client.bot_client import BotClient
from bot.sdk.ffi_routing import RoutedFfiQueue
from bot import sdk
from livekit.rtc.event_emitter import EventEmitter
BotClient()
def state():
    routed = type(FfiClient.instance.queue) is RoutedFfiQueue
    emit = EventEmitter.emit.__module__ == "bot.sdk.emit_arity"
    return (routed, "lkbot-os-probe" in os.environ.get("PATH", ""), emit)
before = state()
result = {action}
print(before, result, state(), sdk.enabled(), flush=True)
# Leave without the interpreter's teardown: the SDK's native side can abort the process
# at exit ("panic in a function that cannot unwind" on a tokio thread, 1 exit in ~10
# on a loaded box, after everything above printed): upstream, and not what this tests.
os._exit(0)
"""


def _probe(action: str) -> str:
    # a fresh process, with the PATH of one that never applied the patches (the e2e
    # suite applies them in the test process, and children inherit its PATH)
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if "lkbot-os-probe" not in p
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(action=action)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        timeout=120,
    )
    assert out.returncode == 0, f"exit {out.returncode}: {out.stdout}{out.stderr[-4000:]}"
    return out.stdout.strip()


def test_the_client_library_changes_nothing_until_asked() -> None:
    assert _probe("None") == "(False, False, False) None (False, False, False) False"


def test_enable_patches_a_supported_sdk() -> None:
    before, _, after = _probe("sdk.enable()").partition(" True ")
    assert before == "(False, False, False)"
    assert after == "(True, True, True) True"


def test_an_unknown_sdk_version_runs_stock() -> None:
    assert (
        _probe("sdk.enable('9.0.0')") == "(False, False, False) False (False, False, False) False"
    )


def test_emit_calls_each_callback_as_the_stock_emit_does_with_one_signature_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The patched emit passes each callback as many arguments as it takes (all of
    them with *args), exactly as livekit's own; it works a callback's arity out once."""
    import inspect

    from livekit.rtc.event_emitter import EventEmitter

    from bot.sdk import emit_arity

    got: list[tuple[str, tuple[object, ...]]] = []

    def none() -> None:
        got.append(("none", ()))

    def one(a: object) -> None:
        got.append(("one", (a,)))

    def three(a: object, b: object, c: object = "default") -> None:
        got.append(("three", (a, b, c)))

    def star(*a: object) -> None:
        got.append(("star", a))

    class Handler:
        def method(self, a: object, b: object) -> None:
            got.append(("method", (a, b)))

    emitter: EventEmitter[str] = EventEmitter()
    for cb in (
        none,
        one,
        three,
        star,
        Handler().method,
        lambda a, b: got.append(("lambda", (a, b))),
    ):
        emitter.on("e", cb)
    calls = []
    real = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda f: calls.append(f) or real(f))
    emit_arity._emit(emitter, "e", 1, 2)
    patched = sorted(got)
    got.clear()
    emit_arity._stock_emit(emitter, "e", 1, 2)
    assert patched == sorted(got) and len(got) == 6
    calls.clear()
    emit_arity._emit(emitter, "e", 1, 2)
    assert calls == []  # each arity was kept


@pytest.mark.parametrize("plant", ["file", "symlink", "open dir", "extra file"])
def test_nothing_planted_in_the_shared_temp_dir_is_used_or_stops_us(
    plant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user of the host gets there first: a plain file, a link to a directory
    of theirs, a directory others may write, or one holding something else. The probe
    is then not skipped (PATH unchanged), and nothing raises."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    here = os_probe.shadow_dir()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    if plant == "file":
        here.write_text("x")
    elif plant == "symlink":
        here.symlink_to(theirs)
    elif plant == "open dir":
        here.mkdir()
        here.chmod(0o777)
    else:
        here.mkdir(mode=0o700)
        (here / "getopt").write_text("#!/bin/sh\n")
    assert os_probe.skip() is False
    assert os.environ["PATH"] == "/usr/bin:/bin"
    assert list(theirs.iterdir()) == []


def test_the_probe_dir_is_ours_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert os_probe.skip() is True
    here = os_probe.shadow_dir()
    assert stat.S_IMODE(here.lstat().st_mode) == 0o700
    assert os.environ["PATH"].split(os.pathsep)[0] == str(here)
    assert os_probe.skip() is True  # again: idempotent
