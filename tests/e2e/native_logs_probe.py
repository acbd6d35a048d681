"""Run in a process of its own (the FFI is process-wide): join a real room, send a
packet, leave, and print how many FFI events of each kind reached Python.

`python -m tests.e2e.native_logs_probe sdk|quiet` with LIVEKIT_URL/_API_KEY/_API_SECRET:
`sdk` initialises the FFI as livekit.rtc does (capture_logs=True), `quiet` calls
`bot.sdk.native_logs.quiet()`. Both count through the same callback.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import sys
from collections import Counter

from livekit import rtc
from livekit.rtc import _ffi_client
from livekit.rtc._proto import ffi_pb2

from bot.config import Settings
from bot.room.options import data_only
from bot.room.tokens import mint_token
from bot.sdk import native_logs

counts: Counter[str] = Counter()


@ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)  # type: ignore[misc]
def counting(data: ctypes._Pointer[ctypes.c_uint8], size: int) -> None:
    event = ffi_pb2.FfiEvent()
    event.ParseFromString(ctypes.string_at(data, int(size)))
    counts[event.WhichOneof("message") or "?"] += 1
    _ffi_client.ffi_event_callback(data, size)


async def main(mode: str) -> None:
    if mode == "sdk":
        lib = _ffi_client.FfiClient.instance._ffi_lib
        lib.livekit_ffi_initialize(counting, True, b"python", rtc.__version__.encode())
    else:
        native_logs.ffi_event_callback = counting  # what quiet() hands the FFI
        assert native_logs.quiet()
    env = os.environ
    settings = Settings(
        livekit_url=env["LIVEKIT_URL"],
        livekit_api_key=env["LIVEKIT_API_KEY"],
        livekit_api_secret=env["LIVEKIT_API_SECRET"],
    )
    room = rtc.Room()
    token = mint_token(settings, room=f"native-logs-{os.getpid()}", identity="probe")
    await room.connect(settings.livekit_url, token, data_only())
    await room.local_participant.set_attributes({"probe": "1"})
    await room.local_participant.publish_data(b"x", reliable=True, topic="probe")
    await room.disconnect()
    print(json.dumps(dict(counts)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
    os._exit(0)  # not the interpreter's teardown: livekit's FFI threads may still call in
