"""One load process: its share of simulated users, each in its own room, closed loop.

`python -m bench.load --system ours|peer|echo --rooms r1,r2 --plan '[{"profile": "instant",
"text": "...", "turns": 10}]'` (LIVEKIT_* from the environment). Each user connects, warms
up with one unrecorded turn, then runs the plan's profiles in order. Prints one JSON
object per line: a record per measured turn (ms from sending; `at`/`until` wall clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from livekit import rtc

from bot import sdk
from bot.client.bot_client import BotClient
from bot.config import Settings
from bot.protocol.outbound import BotMessage, Error, TurnEnd
from bot.room.tokens import mint_token

ECHO_IDENTITY = "echo"
ECHO3_TOPIC = "echo3"
Marks = dict[str, float]


async def connect_bare(room: rtc.Room, url: str, token: str) -> None:
    """A bare participant as cheap as a BotClient with the SDK patches (its native logs
    in Rust, only its own room's FFI events): the load generator costs the same
    whatever system it measures."""
    sdk.enable()
    await room.connect(url, token)
    sdk.bind(room)


def token_for(room: str, identity: str, agent: str = "") -> str:
    settings = Settings(
        livekit_url=os.environ["LIVEKIT_URL"],
        livekit_api_key=os.environ["LIVEKIT_API_KEY"],
        livekit_api_secret=os.environ["LIVEKIT_API_SECRET"],
        agent_name=agent,
    )
    return mint_token(settings, room=room, identity=identity)


async def _until_participant(
    room: rtc.Room, match: Callable[[rtc.RemoteParticipant], bool]
) -> None:
    joined = asyncio.Event()
    handler = room.on("participant_connected", lambda _p: joined.set())
    try:
        while not any(match(p) for p in room.remote_participants.values()):
            joined.clear()
            await joined.wait()
    finally:
        room.off("participant_connected", handler)


class User(Protocol):
    async def connect(self, room: str, identity: str, agent: str) -> None: ...
    async def turn(self, text: str) -> Marks: ...  # perf_counter marks; "end" always set
    async def close(self) -> None: ...


class OursUser:
    """Our protocol: ack, turn.start, first turn.delta, turn.end."""

    KEYS: ClassVar[dict[str, str]] = {
        "ack": "ack",
        "error": "ack",
        "turn.start": "start",
        "turn.delta": "first",
        "turn.end": "end",
    }

    def __init__(self) -> None:
        sdk.enable()  # as the bare participants' (connect_bare)
        self.client = BotClient()
        self.marks: Marks = {}
        self.current = ""
        self.why = ""  # what a turn that did not complete said
        self.client.on_message = self._on_message

    async def connect(self, room: str, identity: str, agent: str) -> None:
        self.client.agent_name = agent
        await self.client.connect(os.environ["LIVEKIT_URL"], token_for(room, identity, agent))

    def _on_message(self, m: BotMessage) -> None:
        key = self.KEYS.get(m.type)
        if key is None or key in self.marks or getattr(m, "reply_to", None) != self.current:
            return
        self.marks[key] = time.perf_counter()
        if isinstance(m, TurnEnd):
            self.marks["ok"] = float(m.status == "completed")
            self.why = f"turn.end {m.status}/{m.reason}" + (f" {m.error.code}" if m.error else "")
        elif isinstance(m, Error):
            self.marks["end"], self.marks["ok"] = self.marks["ack"], 0.0
            self.why = f"error {m.code}: {m.message}"

    async def turn(self, text: str) -> Marks:
        self.marks = {}
        self.current = await self.client.send({"type": "chat.message", "text": text})
        try:
            await self.client.wait_for(lambda _: "end" in self.marks, 120)
        except TimeoutError:
            # what there is to go on when a turn never ends: who, which message, and
            # what of its turn came (grep the worker's log for the identity)
            raise TimeoutError(
                f"no turn.end in 120 s: {self.client.identity} message {self.current}, "
                f"got {sorted(self.marks)}, last seq {self.client.last_seq}"
            ) from None
        return self.marks

    async def close(self) -> None:
        await self.client.disconnect()


class PeerUser:
    """AgentSession text mode: `lk.chat` in, `lk.transcription` streams out."""

    def __init__(self) -> None:
        self.room = rtc.Room()
        self.streams: asyncio.Queue[Marks] = asyncio.Queue()
        self.readers: set[asyncio.Task[None]] = set()
        self.room.register_text_stream_handler("lk.transcription", self._on_stream)

    def _on_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        async def read() -> None:
            first = None
            async for _chunk in reader:
                first = first or time.perf_counter()
            end = time.perf_counter()
            self.streams.put_nowait({"first": first or end, "end": end, "ok": 1.0})

        task = asyncio.create_task(read())
        self.readers.add(task)
        task.add_done_callback(self.readers.discard)

    async def connect(self, room: str, identity: str, agent: str) -> None:
        await connect_bare(self.room, os.environ["LIVEKIT_URL"], token_for(room, identity, agent))
        await self.room.local_participant.set_attributes({"bench": "1"})
        await _until_participant(
            self.room, lambda p: p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        )

    async def turn(self, text: str) -> Marks:
        await self.room.local_participant.send_text(text, topic="lk.chat")
        return await asyncio.wait_for(self.streams.get(), 120)

    async def close(self) -> None:
        await self.room.disconnect()


class EchoUser:
    """The floor: a packet to the echo participant and back."""

    topic, packets = "echo", 1

    def __init__(self) -> None:
        self.room = rtc.Room()
        self.back: asyncio.Queue[float] = asyncio.Queue()
        self.room.on("data_received", lambda p: self.back.put_nowait(time.perf_counter()))

    async def connect(self, room: str, identity: str, agent: str) -> None:
        await connect_bare(self.room, os.environ["LIVEKIT_URL"], token_for(room, identity))
        await self.room.local_participant.set_attributes({"bench": "1"})
        await _until_participant(self.room, lambda p: p.identity == ECHO_IDENTITY)
        # the same handshake our client does: until the echo has seen us join, it cannot
        # tell who sent a packet, and drops it
        wait = 0.25
        for _ in range(8):
            try:
                await asyncio.wait_for(self.turn("hello"), wait)
                return
            except TimeoutError:
                wait = min(wait * 2, 4.0)
        raise TimeoutError("the echo participant never answered")

    async def turn(self, text: str) -> Marks:
        payload = json.dumps({"v": 1, "type": "chat.message", "id": "x" * 12, "text": text})
        await self.room.local_participant.publish_data(
            payload, reliable=True, topic=self.topic, destination_identities=[ECHO_IDENTITY]
        )
        ack = await self.back.get()
        t = ack
        for _ in range(self.packets - 1):
            t = await self.back.get()
        return {"ack": ack, "first": t, "end": t, "ok": 1.0}

    async def close(self) -> None:
        await self.room.disconnect()


class Echo3User(EchoUser):
    """The floor of a turn's first text: the echo comes back behind two packets the size
    of an ack and a turn.start, sent the moment the packet arrives."""

    topic, packets = ECHO3_TOPIC, 3


SYSTEMS: dict[str, type[OursUser] | type[PeerUser] | type[EchoUser]] = {
    "ours": OursUser,
    "peer": PeerUser,
    "echo": EchoUser,
    "echo3": Echo3User,
}


# Joins in flight per load process. A burst of 20+ simultaneous new rooms stalls the
# single-node server's agent dispatch on this 2-core box (jobs are neither assigned nor
# refused; both bots are affected alike), and the benchmark measures turns, not join storms.
JOINS_IN_FLIGHT = 5


class CpuWindow:
    """The measured worker's CPU (with its job processes) from when the first user
    starts its measured turns to when the last one has ended them: `--cpu-pid`."""

    def __init__(self, pid: int | None, users: int) -> None:
        self.pid, self.left = pid, users
        self.start: float | None = None
        self.seconds: float | None = None

    def _now(self) -> float:
        from .stack import tree_cpu_seconds

        assert self.pid is not None
        return tree_cpu_seconds(self.pid)

    def begin(self) -> None:
        if self.pid is not None and self.start is None:
            self.start = self._now()

    def done(self) -> None:
        self.left -= 1
        if self.pid is not None and self.left == 0 and self.start is not None:
            self.seconds = self._now() - self.start


async def run_user(
    system: str,
    room: str,
    plan: list[dict[str, Any]],
    agent: str,
    barrier: asyncio.Barrier,
    joins: asyncio.Semaphore,
    cpu: CpuWindow | None = None,
) -> list[dict[str, Any]]:
    user = SYSTEMS[system]()
    failed: BaseException | None = None
    phase = "connect"
    try:
        async with joins:
            identity = f"user-{secrets.token_hex(4)}"  # rooms may repeat: one room, many users
            await asyncio.wait_for(user.connect(room, identity, agent), 120)
        phase = "warm-up turn"
        await user.turn(plan[0]["text"])  # warm-up, not recorded
    except Exception as e:
        failed = RuntimeError(f"{phase}: {e!r}")
    await barrier.wait()  # measured turns start when every user is connected and warm
    if failed is not None:
        if cpu is not None:
            cpu.done()
        raise failed
    if cpu is not None:
        cpu.begin()
    records = []
    for step in plan:
        for _ in range(step["turns"]):
            t0, wall = time.perf_counter(), time.time()
            marks = await user.turn(step["text"])
            ms: dict[str, float] = {
                k: round((marks[k] - t0) * 1000, 3)
                for k in ("ack", "start", "first", "end")
                if k in marks
            }
            why = {} if marks.get("ok") else {"why": getattr(user, "why", "") or "?"}
            records.append(
                {
                    **why,
                    "profile": step["profile"],
                    "room": room,
                    **ms,
                    "ok": bool(marks.get("ok")),
                    "at": wall,
                    "until": wall + ms["end"] / 1000,
                }
            )
    if cpu is not None:
        cpu.done()
    try:
        await asyncio.wait_for(user.close(), 30)
    except Exception as e:  # the turns are measured: a slow goodbye does not lose them
        print(json.dumps({"room": room, "error": f"close: {e!r}"}), flush=True)
    return records


async def main(args: argparse.Namespace) -> None:
    rooms, plan = args.rooms.split(","), json.loads(args.plan)
    barrier, joins = asyncio.Barrier(len(rooms)), asyncio.Semaphore(JOINS_IN_FLIGHT)
    cpu = CpuWindow(args.cpu_pid, len(rooms))
    users = [
        asyncio.create_task(run_user(args.system, r, plan, args.agent, barrier, joins, cpu))
        for r in rooms
    ]
    for room, result in zip(
        rooms, await asyncio.gather(*users, return_exceptions=True), strict=True
    ):
        if isinstance(result, BaseException):
            print(json.dumps({"room": room, "error": repr(result)}), flush=True)
        else:
            for rec in result:
                print(json.dumps(rec), flush=True)
    if cpu.seconds is not None:
        print(json.dumps({"cpu_s": cpu.seconds}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", choices=sorted(SYSTEMS), required=True)
    parser.add_argument("--rooms", required=True)
    parser.add_argument("--plan", required=True, help="JSON list of {profile, text, turns}")
    parser.add_argument("--agent", default="")
    parser.add_argument("--cpu-pid", type=int, help="measure this worker's CPU (CpuWindow)")
    asyncio.run(main(parser.parse_args()))
