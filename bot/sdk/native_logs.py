"""Keep livekit's native (Rust and libwebrtc) logs out of Python unless asked for.

`livekit.rtc` starts its FFI with `capture_logs=True` (`_ffi_client.py`). The FFI then
sets the Rust log level to TRACE and libwebrtc's log sink to VERBOSE
(`livekit-ffi/src/server/mod.rs`, `webrtc-sys/src/webrtc.cpp`), and hands every record
to Python as an event of its own: a ctypes callback on a tokio thread, the GIL, a
protobuf parse. Python then drops the DEBUG ones (all but a few), unless
`LIVEKIT_RTC_DEBUG` is set. Counted in one process during a 50-room burst: 189,166
records, 187,048 of them libwebrtc DEBUG; that was most of the CPU of a join (the
tokio threads ran Python: 8–10 s per 50-room burst, in the worker and in the load
generator alike, against 0.6 s in the worker's own Python thread).

`quiet()` initialises the FFI again without capture (the FFI allows it: `setup()`
replaces the configuration). Native records then go to Rust's `env_logger` on stderr,
filtered by `RUST_LOG` there, in Rust, at no cost for what is filtered out. `RUST_LOG`
defaults to `warn`, so warnings and errors still show. With `LIVEKIT_RTC_DEBUG` set,
nothing changes (the SDK's own way to see native logs in Python).

It also keeps the SDK's per-connect OS probe from running `lsb_release` (`os_probe.py`):
the other process-wide setting that makes each join cheaper.
"""

from __future__ import annotations

import os
import threading

from livekit.rtc import __version__ as rtc_version
from livekit.rtc._ffi_client import FfiClient, ffi_event_callback

from . import os_probe

DEFAULT_RUST_LOG = "warn"

_lock = threading.Lock()
_quiet = False


def debugging() -> bool:
    return os.environ.get("LIVEKIT_RTC_DEBUG", "").strip().lower() in ("true", "1")


def quiet() -> bool:
    """Stop native log forwarding in this process (idempotent). Call before the first
    `rtc.Room` so that `RUST_LOG`'s default applies; returns whether it is off."""
    global _quiet
    with _lock:
        if _quiet:
            return True
        if debugging():
            return False
        os_probe.skip()
        unset = "RUST_LOG" not in os.environ
        if unset:  # read once, when the FFI server is built (FfiClient's first use)
            os.environ["RUST_LOG"] = DEFAULT_RUST_LOG
        try:
            client = FfiClient.instance
        finally:
            if unset:
                del os.environ["RUST_LOG"]
        client._ffi_lib.livekit_ffi_initialize(
            ffi_event_callback, False, b"python", rtc_version.encode("ascii")
        )
        _quiet = True
        return True
