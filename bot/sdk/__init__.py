"""Workarounds for the LiveKit Python SDK (`livekit.rtc`), in one place and opt-in.

Four process-wide changes make many rooms (or many clients) in one process cheap
(measured in docs/performance.md):

- `native_logs.quiet()`: native (Rust, libwebrtc) logs stay in Rust instead of each
  record crossing into Python;
- `os_probe`: the SDK's per-connect OS probe no longer runs `lsb_release`;
- `ffi_routing`: each FFI room event wakes only its own `Room`, not every one, and a
  packet published with `publish_now` has its answer delivered to its call alone;
- `emit_arity`: an event's callbacks are called without `inspect.signature` each time.

They replace parts of the SDK's process-wide state, so a library must not apply them
behind its importer's back: the worker (`bot start`) and `bot chat` call `enable()`;
`BotClient` in your app does not unless you do (`bot.sdk.enable()`). They were written
against the SDK versions in `SUPPORTED`; on any other, `enable()` changes nothing (stock
behaviour) and says so in the log once.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from livekit import rtc
from livekit.rtc import __version__ as rtc_version

log = logging.getLogger(__name__)

SUPPORTED = ("1.1.",)  # livekit (rtc) versions these patches were written against
_lock = threading.Lock()
_enabled = False


def supported(version: str = rtc_version) -> bool:
    return version.startswith(SUPPORTED)


def enable(version: str = rtc_version) -> bool:
    """Apply the patches (once); False, and nothing changed, on an SDK version
    they were not written for."""
    global _enabled
    with _lock:
        if _enabled:
            return True
        if not supported(version):
            log.warning(
                "livekit %s: the SDK patches (bot.sdk) are written for %s; running stock",
                version,
                ", ".join(f"{v}x" for v in SUPPORTED),
            )
            return False
        from . import emit_arity, ffi_routing, native_logs

        native_logs.quiet()  # also skips the OS probe's lsb_release (os_probe.py)
        ffi_routing.install()
        emit_arity.install()
        _enabled = True
        return True


def enabled() -> bool:
    return _enabled


def bind(room: rtc.Room) -> None:
    """After `room.connect`: with the patches on, its FFI events reach it alone."""
    if _enabled:
        from . import ffi_routing

        ffi_routing.bind(room)


def publish_now(
    participant: rtc.LocalParticipant, payload: str, *, topic: str, to: str
) -> asyncio.Future[None] | None:
    """With the patches on: hand a reliable packet to `to` to the FFI now and return
    what to await for its answer (`ffi_routing.publish_now`); None when they are off
    (then `publish`, awaited before the next packet)."""
    if not _enabled:
        return None
    from . import ffi_routing

    return ffi_routing.answered(ffi_routing.publish_now(participant, payload, topic=topic, to=[to]))


async def publish(participant: rtc.LocalParticipant, payload: str, *, topic: str, to: str) -> None:
    """A reliable packet to `to`, once it went out: `publish_now`'s, or with the
    patches off the SDK's `publish_data`."""
    answer = publish_now(participant, payload, topic=topic, to=to)
    if answer is None:
        await participant.publish_data(
            payload, reliable=True, topic=topic, destination_identities=[to]
        )
        return
    await answer
