"""The transport floor: a participant that sends each packet straight back to its sender.

`python -m bench.echo --rooms r1,r2,...` (LIVEKIT_* from the environment); writes
`ready` to stdout once it is in every room. With `--on-go` it writes `up` first and
joins when a line comes on stdin (a burst: it joins as a dispatched bot would). Native
logs stay in Rust and each room gets only its own FFI events, as in our worker: the
floor is the cheapest participant there is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from livekit import rtc

from bot.sdk import native_logs

from .load import ECHO3_TOPIC, ECHO_IDENTITY, connect_bare, token_for

# an ack's size (turn.start is a few bytes less)
FILLER = (
    b'{"v":1,"type":"ack","id":"b1-0123456789ab","seq":12,"ts":1764800000000,'
    b'"reply_to":"m-0123456789","status":"accepted","turn":"t_0123456789ab"}'
)


async def join(name: str, tasks: set[asyncio.Task[None]]) -> rtc.Room:
    room = rtc.Room()

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.participant is None:
            return
        # on topic `echo3`, two packets the size of an ack and a turn.start go first: the
        # SDK's cost for what the protocol puts before a turn's first text
        payloads = [*([FILLER] * 2 if packet.topic == ECHO3_TOPIC else []), packet.data]
        for data in payloads:  # tasks start in order: the SDK gets them in order
            task = asyncio.create_task(
                room.local_participant.publish_data(
                    data,
                    reliable=True,
                    topic=packet.topic or "",
                    destination_identities=[packet.participant.identity],
                )
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    room.on("data_received", on_data)
    await connect_bare(room, os.environ["LIVEKIT_URL"], token_for(name, ECHO_IDENTITY))
    await room.local_participant.set_attributes({"echo": "1"})
    return room


async def main(rooms: list[str], on_go: bool) -> None:
    native_logs.quiet()
    if on_go:
        print("up", flush=True)
        await asyncio.to_thread(input)
    tasks: set[asyncio.Task[None]] = set()
    joined = await asyncio.gather(*(join(r, tasks) for r in rooms))
    print("ready", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await asyncio.gather(*(r.disconnect() for r in joined), return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rooms", required=True)
    parser.add_argument("--on-go", action="store_true", help="join on a line on stdin")
    args = parser.parse_args()
    asyncio.run(main(args.rooms.split(","), args.on_go))
