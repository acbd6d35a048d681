"""A protocol client over a real `rtc.Room`: what a chat widget does, in Python.

Used by `python -m bot chat`, the end-to-end tests and the benchmarks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import itertools
import json
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc

from .. import sdk
from ..protocol.attributes import CLIENT_ATTRIBUTE, is_bot
from ..protocol.chunking import Reassembler, receive, split
from ..protocol.codec import parse_bot_message
from ..protocol.outbound import (
    Ack,
    BotMessage,
    Error,
    SessionReady,
    ToolCall,
    TurnEnd,
    TurnReply,
)
from ..room import options
from ..room.options import data_only, open_sending
from ..tasks import supervise

log = logging.getLogger(__name__)
DIRECT = {"ack", "session.ready", "history.page", "pong", "error"}
CLIENT_MAX_MESSAGE_BYTES = 64 * 2**20  # what we accept from the bot; it is trusted
RESULT_ANSWER_S = 10.0  # how long a tool.result waits for its ack before giving up
Pred = Callable[[list[BotMessage]], bool]
# a client tool: its arguments -> its output (JSON), or an awaitable of it
ToolHandler = Callable[[Any], Any]


@dataclass
class TurnResult:
    request_id: str
    answer: BotMessage  # the ack, or an error if the message was refused
    events: list[BotMessage] = field(default_factory=list)

    @property
    def end(self) -> TurnEnd | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, TurnEnd) else None

    @property
    def reply(self) -> str | None:
        return next((e.text for e in self.events if isinstance(e, TurnReply)), None)


class BotClient:
    def __init__(
        self,
        *,
        topic: str = "lkbot",
        agent_name: str | None = None,
        max_packet: int = 15000,
        keep: int = 10_000,
    ) -> None:
        self.room = rtc.Room()
        self.topic = topic
        self.agent_name = agent_name
        self.max_packet = max_packet
        # each list keeps the last `keep` (a long session does not grow without bound)
        self.keep = keep
        self.messages: list[BotMessage] = []
        self.raw: list[rtc.DataPacket] = []  # the packets received, any topic
        self.forged: list[rtc.DataPacket] = []  # on our topic, but not from the bot: dropped
        self._frames = Reassembler(max_bytes=CLIENT_MAX_MESSAGE_BYTES, max_pending=64)
        self._waiters: list[tuple[Pred, asyncio.Future[list[BotMessage]]]] = []
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(3)
        self.on_message: Callable[[BotMessage], None] | None = None
        self.ready: SessionReady | None = None
        self.sent_ids: list[str] = []
        self.last_seq = 0  # the end of the unbroken run of seqs received: what a resume asks for
        self.gaps: list[Error] = []  # resume_gap answers: what could not be replayed
        # ids of the messages received (bounded): replays are dropped by id, which also
        # holds when a bot that lost the conversation counts seq from 1 again
        self._seen: set[str] = set()
        self._ahead: set[int] = set()  # seqs received past a gap
        self._seen_order: collections.deque[str] = collections.deque()
        self.bot_identity: str | None = None  # the bot we talk to, once found
        # tools this client runs itself (protocol v1.1): name -> (declaration, handler)
        self.tools: dict[str, tuple[dict[str, Any], ToolHandler]] = {}
        # call id -> the result sent (None while the handler runs)
        self._results: collections.OrderedDict[str, dict[str, Any] | None] = (
            collections.OrderedDict()
        )
        self._running_tools: set[asyncio.Task[None]] = set()
        self._resuming: set[asyncio.Task[SessionReady]] = set()
        self._opening: asyncio.Task[None] | None = None  # options.open_sending, at join
        self.room.on("data_received", self._on_data)
        self.room.on("reconnected", self._on_reconnected)

    @property
    def identity(self) -> str:
        return self.room.local_participant.identity

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    async def connect(
        self, url: str, token: str, *, agent_timeout: float = 30.0, handshake: bool = True
    ) -> str:
        """Join the room, wait (bounded) for the bot, and handshake; returns its identity."""
        await self.join(url, token)
        agent = self.bot_identity = await asyncio.wait_for(self._wait_agent(), agent_timeout)
        if handshake:
            self.ready = await self.hello()
        return agent

    async def join(self, url: str, token: str) -> None:
        """Join the room and announce ourselves; nothing more (no bot needed yet)."""
        await self.room.connect(url, token, data_only())
        sdk.bind(self.room)  # with `bot.sdk.enable()` (tests, benchmarks, `bot chat`) only
        # while the bot comes (never raises; supervised all the same)
        self._opening = supervise(open_sending(self.room), name="open sending")
        await self.announce()

    async def announce(self) -> None:
        """Non-publishers' joins reach others in 3 s batches; an attribute change is
        broadcast at once, so the bot learns of us now. (A restarted server forgets
        it: set it again after a reconnect.)"""
        await options.set_attributes(self.room.local_participant, {CLIENT_ATTRIBUTE: "1"})

    def _on_reconnected(self) -> None:
        """LiveKit drops what is published while a connection is re-established:
        ask the bot for everything after the last seq we have."""
        if self.ready is None:
            return
        task = asyncio.create_task(self._resume())
        self._resuming.add(task)
        task.add_done_callback(self._resumed)

    def _resumed(self, task: asyncio.Task[SessionReady]) -> None:
        self._resuming.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not resume after a reconnect: %s", task.exception())

    async def _resume(self) -> SessionReady:
        await self.announce()
        return await self.hello(resume=True)

    async def hello(
        self, *, attempts: int = 8, first_wait: float = 0.25, resume: bool = False
    ) -> SessionReady:
        """`session.hello` until `session.ready` arrives.

        A packet sent in the first moments after joining can reach the bot before
        the bot has seen its sender join; the bot cannot tell who sent it and drops
        it. Each try uses a new id, so no message goes unanswered once it is seen; the
        answer to any try counts (on a busy box one may come after the next was sent)."""
        wait = first_wait
        sent: list[str] = []
        for _ in range(attempts):
            body: dict[str, Any] = {"type": "session.hello", "client": {"name": "lkbot-client"}}
            if self.tools:
                body["tools"] = [spec for spec, _ in self.tools.values()]
            if resume:
                body["resume"] = {"last_seq": self.last_seq}
            try:
                sent.append(await self.send(body))
                await self.wait_for(lambda _: self._first_answer(sent) is not None, wait)
            except TimeoutError:
                wait = min(wait * 2, 4.0)
                continue
            except Exception as e:  # e.g. publishing while the connection is re-established
                log.info("session.hello not sent (%s); trying again", e)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 4.0)
                continue
            answer = self._first_answer(sent)
            sent.clear()  # what the earlier tries get from now on no longer counts
            if resume and isinstance(answer, Error) and answer.code == "resume_gap":
                # what we missed is gone (or the bot lost the conversation): start
                # from what comes next; history.get has the conversation
                log.warning("resume refused: %s", answer.message)
                self.gaps.append(answer)
                resume, self.last_seq = False, 0
                self._ahead.clear()
                continue
            if not isinstance(answer, SessionReady):
                raise RuntimeError(f"session.hello was refused: {answer}")
            return answer
        raise TimeoutError("the bot did not answer session.hello")

    def _is_bot(self, p: rtc.RemoteParticipant | None) -> bool:
        """The bot: an agent (a kind only a server-side token can grant) that speaks
        the protocol, with the configured agent name if there is one."""
        return (
            p is not None
            and p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            and is_bot(p.attributes, self.agent_name)
        )

    def _agent(self, exclude: str | None = None) -> str | None:
        return next(
            (
                p.identity
                for p in self.room.remote_participants.values()
                if self._is_bot(p) and p.identity != exclude
            ),
            None,
        )

    async def _wait_agent(self, exclude: str | None = None) -> str:
        # The agent's attributes (its name among them) may arrive after it joined.
        changed = asyncio.Event()
        joined = self.room.on("participant_connected", lambda *_: changed.set())
        updated = self.room.on("participant_attributes_changed", lambda *_: changed.set())
        left = self.room.on("participant_disconnected", lambda *_: changed.set())
        try:
            while (agent := self._agent(exclude)) is None:
                changed.clear()
                await changed.wait()
            return agent
        finally:
            self.room.off("participant_connected", joined)
            self.room.off("participant_attributes_changed", updated)
            self.room.off("participant_disconnected", left)

    async def wait_bot(self, *, exclude: str | None = None, timeout: float = 30.0) -> str:
        """Wait (bounded) for a bot in the room other than `exclude` (one that left or
        whose worker died), until the old one is gone too; then handshake with it."""
        agent = self.bot_identity = await asyncio.wait_for(self._wait_agent(exclude), timeout)
        if exclude is not None:
            await asyncio.wait_for(self._gone(exclude), timeout)
        # another bot continues the stored conversation: resume where we were
        self.ready = await self.hello(resume=self.last_seq > 0)
        return agent

    async def _gone(self, identity: str) -> None:
        left = asyncio.Event()

        def gone(p: rtc.RemoteParticipant) -> None:
            if p.identity == identity:
                left.set()

        handler = self.room.on("participant_disconnected", gone)
        try:
            if identity in self.room.remote_participants:
                await left.wait()
        finally:
            self.room.off("participant_disconnected", handler)

    @property
    def agent(self) -> str:
        """The bot we talk to: the one found first while it stays (a second bot may
        join for a moment after a server restart), else whichever is here now.
        Checked before every send: a participant that took the bot's identity (LiveKit
        lets a newer connection with an identity replace the older) is no agent."""
        bot = self.room.remote_participants.get(self.bot_identity or "")
        if self.bot_identity is not None and self._is_bot(bot):
            return self.bot_identity
        agent = self._agent()
        if agent is None:
            raise RuntimeError("the bot is not in the room")
        self.bot_identity = agent
        return agent

    async def disconnect(self) -> None:
        await self.room.disconnect()

    async def rejoin(self, url: str, token: str, *, timeout: float = 30.0) -> str:
        """Join again on a new connection (the server we were connected through died:
        `url` may name another node of the cluster) and continue the conversation:
        find the bot and resume from the last seq we have."""
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        self.room = rtc.Room()
        self.room.on("data_received", self._on_data)
        self.room.on("reconnected", self._on_reconnected)
        self.bot_identity = None
        await self.join(url, token)
        return await self.wait_bot(timeout=timeout)

    # -- sending --

    async def send_raw(self, payload: bytes | str, *, topic: str | None = None) -> None:
        await self.room.local_participant.publish_data(
            payload, reliable=True, destination_identities=[self.agent], topic=topic or self.topic
        )

    async def send(self, body: dict[str, Any]) -> str:
        body = {"v": 1, "id": self.new_id(), **body}
        self.sent_ids.append(str(body["id"]))
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        if len(text.encode()) <= self.max_packet:
            await self.send_raw(text)
        else:
            for frame in split(text, of=body["id"], max_packet=self.max_packet):
                await self.send_raw(frame)
        return str(body["id"])

    # -- receiving --

    def _kept(self, items: list[Any]) -> None:
        if len(items) > self.keep:
            del items[: len(items) - self.keep]

    def tool(
        self,
        name: str,
        handler: ToolHandler,
        *,
        description: str = "",
        parameters: dict[str, Any] | None = None,
    ) -> None:
        """Offer a tool this client runs (declared with the next `hello`): when the
        model calls it, `handler(arguments)` runs here and what it returns (JSON) is the
        result; what it raises is the error the model is told. Register before
        `connect`, or `hello()` again after."""
        spec = {
            "name": name,
            "description": description,
            "parameters": parameters or {"type": "object"},
        }
        self.tools[name] = (spec, handler)

    async def approve(self, call_id: str, approved: bool, reason: str | None = None) -> BotMessage:
        """Answer a `tool.approval_request` of one of our turns: the ack (`accepted`,
        `duplicate`, or `noop` when the call no longer waits)."""
        fields: dict[str, Any] = {"call_id": call_id, "approved": approved}
        if reason:
            fields["reason"] = reason
        return await self.request("tool.approve", **fields)

    def _run_tool(self, call: ToolCall) -> None:
        """A `tool.call`: run it (once per call id; a replayed call gets the result it
        had again, in case the first never reached the bot)."""
        if call.call_id in self._results:
            done = self._results[call.call_id]
            if done is not None:  # None: still running, its result goes when it ends
                self._send_later(done)
            return
        self._results[call.call_id] = None
        while len(self._results) > 256:
            self._results.popitem(last=False)
        entry = self.tools.get(call.name)

        async def run() -> None:
            body: dict[str, Any] = {"type": "tool.result", "call_id": call.call_id}
            try:
                if entry is None:
                    raise LookupError(f"this client has no tool {call.name!r}")
                result = entry[1](call.arguments)
                body["output"] = await result if inspect.isawaitable(result) else result
            except Exception as e:
                body["error"] = {"message": str(e)[:1024] or type(e).__name__}
            self._results[call.call_id] = body
            await self._send_result(body)

        self._keep_task(run())

    async def _send_result(self, body: dict[str, Any]) -> None:
        """Send a `tool.result` until the bot takes it: a retryable refusal (a busy
        sender's `rate_limited`) is sent again after the wait it names (a repeat is
        harmless: `duplicate` or `noop`). Unsent or unanswered, it goes again when a
        resume replays the call."""
        wait = 0.25
        for _ in range(8):
            try:
                msg_id = await self.send(body)
                await self.wait_for(self._answered(msg_id), RESULT_ANSWER_S)
            except Exception as e:
                log.warning("tool.result not taken (%r); it goes again if the call is replayed", e)
                return
            answer = self.answer_to(msg_id)
            if not (isinstance(answer, Error) and answer.retryable):
                return
            await asyncio.sleep(max(wait, (answer.retry_after_ms or 0) / 1000))
            wait = min(wait * 2, 4.0)

    def _send_later(self, body: dict[str, Any]) -> None:
        self._keep_task(self._send_result(body))

    def _keep_task(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._running_tools.add(task)
        task.add_done_callback(self._running_tools.discard)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        self.raw.append(packet)
        self._kept(self.raw)
        if packet.topic != self.topic:
            return
        if not self._is_bot(packet.participant):
            # anyone in the room can publish on our topic: never take it for the bot
            self.forged.append(packet)
            self._kept(self.forged)
            self._notify()
            return
        whole = receive(self._frames, packet.data)
        if whole is None:
            return  # a chunk frame; the message is not complete yet
        msg = parse_bot_message(whole)
        if isinstance(msg, ToolCall):
            self._run_tool(msg)  # a replay too: its result may not have reached the bot
        if msg.id:
            if msg.id in self._seen:
                return  # a replayed message we already have
            self._remember(msg.id)
        self._track(getattr(msg, "seq", 0) or 0)
        self.messages.append(msg)
        self._kept(self.messages)
        if self.on_message is not None:
            self.on_message(msg)
        self._notify()

    def _track(self, seq: int) -> None:
        """`last_seq` is the end of the unbroken run of seqs received: a packet lost in a
        reconnect (and its successors received) still gets asked for by a resume."""
        if not seq:
            return
        if self.last_seq == 0 and not self._ahead:
            self.last_seq = seq - 1  # joined a conversation already under way
        if seq == self.last_seq + 1:
            self.last_seq = seq
            while self.last_seq + 1 in self._ahead:
                self._ahead.discard(self.last_seq + 1)
                self.last_seq += 1
        elif seq > self.last_seq + 1:
            self._ahead.add(seq)

    def _remember(self, msg_id: str, keep: int = 4096) -> None:
        self._seen.add(msg_id)
        self._seen_order.append(msg_id)
        if len(self._seen_order) > keep:
            self._seen.discard(self._seen_order.popleft())

    def _notify(self) -> None:
        for waiter in list(self._waiters):
            pred, fut = waiter
            if not fut.done() and pred(self.messages):
                fut.set_result(self.messages)
                self._waiters.remove(waiter)

    async def wait_for(self, pred: Pred, timeout: float = 30.0) -> list[BotMessage]:
        if pred(self.messages):
            return self.messages
        fut: asyncio.Future[list[BotMessage]] = asyncio.get_running_loop().create_future()
        waiter = (pred, fut)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _answered(self, msg_id: str) -> Pred:
        return lambda _: self.answer_to(msg_id) is not None

    def _first_answer(self, ids: list[str]) -> BotMessage | None:
        return next((a for i in ids if (a := self.answer_to(i)) is not None), None)

    def answer_to(self, msg_id: str) -> BotMessage | None:
        return next(
            (
                m
                for m in self.messages
                if m.type in DIRECT and getattr(m, "reply_to", None) == msg_id
            ),
            None,
        )

    async def request(self, type_: str, timeout: float = 30.0, **fields: Any) -> BotMessage:
        """Send one message and wait for its direct answer."""
        msg_id = await self.send({"type": type_, **fields})
        await self.wait_for(self._answered(msg_id), timeout)
        answer = self.answer_to(msg_id)
        assert answer is not None
        return answer

    def turn_events(self, turn: str) -> list[BotMessage]:
        return [m for m in self.messages if m.type.startswith("turn.") and m.turn == turn]  # type: ignore[union-attr]

    async def chat(self, text: str, timeout: float = 60.0, **fields: Any) -> TurnResult:
        """Send a chat message and wait for its turn to end (or for its refusal)."""
        answer = await self.request("chat.message", timeout, text=text, **fields)
        result = TurnResult(request_id=getattr(answer, "reply_to", None) or "", answer=answer)
        if isinstance(answer, Error) or not isinstance(answer, Ack) or answer.turn is None:
            return result
        turn = answer.turn
        await self.wait_for(
            lambda _: any(e.type == "turn.end" for e in self.turn_events(turn)), timeout
        )
        result.events = self.turn_events(turn)
        return result
