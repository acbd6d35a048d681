"""The testing kit for apps built on the bot: the real wire, a scripted LLM, assertions
on turns and tools (docs/testing.md).

`Stack` runs what a test talks to, as separate processes on loopback: a livekit-server,
the scripted OpenAI-compatible LLM (`bot.testing.llm_server`, or your own endpoint) and
the bot as you run it (`python -m bot start`, reading your `.env`, `BOT_TOOLS_MODULE`,
`BOT_MCP_SERVERS`...). `Kit` is what a test holds: users (`BotClient`s over a real
`rtc.Room`), faults (restart or kill the worker, drop a user's connection), golden
transcripts and an LLM judge. The pytest plugin (`bot.testing.pytest_plugin`, installed
with the package) gives them as fixtures: `lkbot_stack` (the session's) and `lkbot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client.bot_client import BotClient
from ..dev import livekit_server
from ..dev.livekit_server import DevServer
from ..dev.processes import free_port, stop_process, wait_until
from ..protocol.outbound import (
    BotMessage,
    HistoryPage,
    ToolApprovalRequest,
    ToolCall,
    TurnEnd,
    TurnReply,
    TurnToolCall,
    TurnToolResult,
)
from ..room.tokens import mint_token
from .script import script as script

BOUND = 60.0  # how long a kit call waits (bounds the test; never what is tested)
# the BOT_ and OPENAI_ settings a stack sets itself; a test's own go on top
_OURS = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


@dataclass
class Process:
    """A process the kit (or our own e2e suite) started, its output in a log file."""

    process: subprocess.Popen[bytes]
    log: Path
    name: str = ""

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        return stop_process(self.process, timeout)


def spawn(args: list[str], env: dict[str, str], name: str, cwd: Path) -> Process:
    """`args` in a session of its own (a SIGKILL of its group reaches its children)."""
    log = Path(tempfile.mkstemp(prefix=f"lkbot-{name}-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    return Process(process, log, name)


def start_scripted_llm(
    env: dict[str, str], cwd: Path, *, timeout: float = BOUND
) -> tuple[Process, str]:
    """`bot.testing.llm_server` on a free port, once it listens; its base URL."""
    port = free_port()
    llm = spawn(
        [sys.executable, "-m", "bot.testing.llm_server", "--port", str(port)], env, "llm", cwd
    )
    wait_until(
        lambda: "scripted LLM server on" in llm.text(),
        llm.process,
        llm.log,
        what="the scripted LLM server",
        timeout=timeout,
    )
    return llm, f"http://127.0.0.1:{port}/v1"


class Stack:
    """livekit-server, the LLM and one worker, started once for a test session.

    `settings`: BOT_* settings for the worker (`{"tools_module": "myapp.tools"}`), on top
    of the environment and the `.env` of `cwd` (the worker reads it as `bot start`
    does). `llm_url`: an OpenAI-compatible endpoint to use instead of the scripted one
    (the worker then keeps your OPENAI_API_KEY / BOT_MODEL)."""

    def __init__(
        self,
        *,
        settings: dict[str, str] | None = None,
        cwd: Path | None = None,
        llm_url: str | None = None,
    ) -> None:
        self.settings = dict(settings or {})
        self.cwd = cwd or Path.cwd()
        self.real_llm = llm_url
        self.store = f"sqlite://{Path(tempfile.mkdtemp(prefix='lkbot-kit-store-')) / 'c.db'}"
        self.server: DevServer | None = None
        self.llm: Process | None = None
        self.llm_url = llm_url or ""
        self.worker: Process | None = None
        self.started_in: dict[str, float] = {}  # what start-up cost, in seconds

    # -- processes --

    def start(self) -> Stack:
        t = time.monotonic()
        self.server = livekit_server.start()
        self.started_in["livekit-server"] = time.monotonic() - t
        if self.real_llm is None:
            t = time.monotonic()
            self._start_llm()
            self.started_in["scripted LLM"] = time.monotonic() - t
        t = time.monotonic()
        self.worker = self._start_worker()
        self.started_in["worker"] = time.monotonic() - t
        return self

    def _start_llm(self) -> None:
        self.llm, self.llm_url = start_scripted_llm(dict(os.environ), self.cwd)

    def worker_env(self) -> dict[str, str]:
        assert self.server is not None
        env = {k: v for k, v in os.environ.items() if k not in _OURS}
        env.update(
            LIVEKIT_URL=self.server.url,
            LIVEKIT_API_KEY=self.server.api_key,
            LIVEKIT_API_SECRET=self.server.api_secret,
            BOT_HTTP_PORT="0",
            BOT_PROCESSES="1",
            BOT_STORE=self.store,  # a restarted worker continues the conversations
            BOT_DRAIN_TIMEOUT="5",
            BOT_WATCHDOG_INTERVAL="1",  # a killed worker's rooms get a bot again soon
        )
        if self.real_llm is None:
            env.update(
                OPENAI_BASE_URL=self.llm_url, OPENAI_API_KEY="scripted", BOT_MODEL="scripted"
            )
        elif self.real_llm:
            env["OPENAI_BASE_URL"] = self.real_llm
        env.update({f"BOT_{k.upper()}": str(v) for k, v in self.settings.items()})
        return env

    def _start_worker(self) -> Process:
        ready = Path(tempfile.mkdtemp(prefix="lkbot-kit-ready-")) / "ready"
        worker = spawn(
            [sys.executable, "-m", "bot", "start", "--ready-file", str(ready)],
            self.worker_env(),
            "kit-worker",
            self.cwd,
        )
        wait_until(ready.exists, worker.process, worker.log, what="the bot", timeout=2 * BOUND)
        return worker

    def restart_worker(self) -> None:
        """SIGTERM (the worker drains: running turns end `cancelled`, reason `shutdown`,
        or are handed over), then a new worker on the same store."""
        if self.worker is not None:
            self.worker.stop(2 * BOUND)
        self.worker = self._start_worker()

    def kill_worker(self) -> None:
        """kill -9 of the worker and its processes; a new one on the same store ends the
        killed one's running turns `failed`, reason `interrupted` (retryable)."""
        if self.worker is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.worker.process.pid, signal.SIGKILL)
            self.worker.process.wait(BOUND)
        self.worker = self._start_worker()

    def stop(self) -> None:
        for proc in (self.worker, self.llm):
            if proc is not None:
                proc.stop()
        if self.server is not None:
            self.server.stop()

    def token(self, identity: str, room: str, **kw: Any) -> str:
        from ..config import Settings

        assert self.server is not None
        settings = Settings(
            livekit_url=self.server.url,
            livekit_api_key=self.server.api_key,
            livekit_api_secret=self.server.api_secret,
        )
        return mint_token(settings, room=room, identity=identity, **kw)


# -- what a test holds --

_KEY_EVENTS = (TurnToolCall, TurnToolResult, ToolApprovalRequest, ToolCall, TurnReply, TurnEnd)


class ExpectationError(AssertionError):
    pass


def _subset(want: Any, got: Any) -> bool:
    """`want` is in `got`: dicts by their keys (recursively), anything else equal."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(
            k in got and _subset(v, got[k]) for k, v in want.items()
        )
    return bool(want == got)


def _show(event: BotMessage) -> str:
    return json.dumps(event.model_dump(exclude={"v", "id", "ts", "seq"}, exclude_none=True))


class Event:
    """One event of a turn, with assertions that return it (for chaining)."""

    def __init__(self, event: BotMessage, where: str) -> None:
        self.event = event
        self._where = where

    def _fail(self, what: str) -> ExpectationError:
        return ExpectationError(f"{self._where}: expected {what}, got {_show(self.event)}")

    def is_tool_call(self, name: str | None = None, arguments: Any = None) -> Event:
        """`turn.tool_call` (the model called a tool); `arguments`: a subset of its own."""
        e = self.event
        if not isinstance(e, TurnToolCall) or (name is not None and e.name != name):
            raise self._fail(f"a tool call{f' of {name}' if name else ''}")
        if arguments is not None and not _subset(arguments, e.arguments):
            raise self._fail(f"arguments including {json.dumps(arguments)}")
        return self

    def is_tool_result(self, status: str | None = "ok", contains: str | None = None) -> Event:
        e = self.event
        if not isinstance(e, TurnToolResult) or (status is not None and e.status != status):
            raise self._fail(f"a tool result{f' with status {status}' if status else ''}")
        if contains is not None and contains not in (e.output or ""):
            raise self._fail(f"a tool result containing {contains!r}")
        return self

    def is_approval_request(self, name: str | None = None) -> Event:
        e = self.event
        if not isinstance(e, ToolApprovalRequest) or (name is not None and e.name != name):
            raise self._fail(f"an approval request{f' for {name}' if name else ''}")
        return self

    def is_reply(self, contains: str | None = None, matches: str | None = None) -> Event:
        """`turn.reply`; `contains` a substring, `matches` a regular expression (search)."""
        e = self.event
        if not isinstance(e, TurnReply):
            raise self._fail("the reply")
        if contains is not None and contains not in e.text:
            raise self._fail(f"a reply containing {contains!r}")
        if matches is not None and re.search(matches, e.text) is None:
            raise self._fail(f"a reply matching {matches!r}")
        return self

    def is_end(self, status: str = "completed", reason: str | None = None) -> Event:
        e = self.event
        if not isinstance(e, TurnEnd) or e.status != status:
            raise self._fail(f"the turn's end, {status}")
        if reason is not None and e.reason != reason:
            raise self._fail(f"the turn's end, reason {reason}")
        return self


class Expect:
    """Assertions over a turn's events in order, in the spirit of LiveKit Agents'
    `RunResult.expect`: tool calls, tool results, approval requests, client tool calls,
    the reply and the end (status, deltas and the start are skipped)."""

    def __init__(self, turn: Turn) -> None:
        self._turn = turn
        self._at = 0

    @property
    def _events(self) -> list[BotMessage]:
        return [e for e in self._turn.events if isinstance(e, _KEY_EVENTS)]

    @property
    def _label(self) -> str:
        return f"turn {self._turn.id} ({self._turn.text[:40]!r})"

    def next_event(self) -> Event:
        if self._at >= len(self._events):
            raise ExpectationError(f"{self._label}: no more events (after {self._at})")
        event = self._events[self._at]
        self._at += 1
        return Event(event, f"{self._label}, event {self._at}")

    def skip_next(self, n: int = 1) -> Expect:
        self._at += n
        return self

    def no_more_events(self) -> None:
        """Only the end is left (or nothing)."""
        rest = [e for e in self._events[self._at :] if not isinstance(e, TurnEnd)]
        if rest:
            raise ExpectationError(f"{self._label}: more events: {_show(rest[0])}")

    def contains_tool_call(self, name: str, arguments: Any = None) -> Event:
        for e in self._events:
            named = isinstance(e, TurnToolCall) and e.name == name
            if named and (arguments is None or _subset(arguments, e.arguments)):  # type: ignore[union-attr]
                return Event(e, self._label)
        raise ExpectationError(f"{self._label}: no tool call of {name} with {arguments}")

    def ended(self, status: str = "completed", reason: str | None = None) -> Event:
        ends = [e for e in self._events if isinstance(e, TurnEnd)]
        if len(ends) != 1:
            raise ExpectationError(f"{self._label}: {len(ends)} turn.end (invariant 2: one)")
        return Event(ends[0], self._label).is_end(status, reason)


@dataclass
class Turn:
    """One chat.message and what the bot answered: `answer` (its ack or error) and the
    turn's events, in order."""

    text: str
    answer: BotMessage
    events: list[BotMessage] = field(default_factory=list)
    _expect: Expect | None = field(default=None, repr=False)

    @property
    def id(self) -> str | None:
        return getattr(self.answer, "turn", None)

    @property
    def refused(self) -> str | None:
        """The error code when the message was refused (`rate_limited`, `busy`...)."""
        return getattr(self.answer, "code", None) if self.answer.type == "error" else None

    @property
    def reply(self) -> str | None:
        return next((e.text for e in self.events if isinstance(e, TurnReply)), None)

    @property
    def end(self) -> TurnEnd | None:
        return next((e for e in self.events if isinstance(e, TurnEnd)), None)

    @property
    def expect(self) -> Expect:
        """The turn's assertions; one cursor per turn (`next_event` moves it on)."""
        if self._expect is None:
            self._expect = Expect(self)
        return self._expect


class User:
    """A participant with the protocol client, as a chat widget would be."""

    def __init__(self, kit: Kit, identity: str, room: str) -> None:
        self.kit = kit
        self.identity = identity
        self.room = room
        self.client = BotClient()

    async def join(self, **token: Any) -> User:
        stack = self.kit.stack
        assert stack.server is not None
        await self.client.join(stack.server.url, stack.token(self.identity, self.room, **token))
        await self.client.wait_bot(timeout=BOUND)
        return self

    async def send(self, text: str, *, timeout: float = BOUND, **fields: Any) -> Turn:
        """A chat.message, and its turn once it ended (or its refusal)."""
        answer = await self.client.request("chat.message", timeout, text=text, **fields)
        turn = Turn(text, answer)
        if answer.type == "ack" and turn.id is not None:
            tid = turn.id
            await self.client.wait_for(
                lambda _: any(isinstance(e, TurnEnd) for e in self.client.turn_events(tid)),
                timeout,
            )
            turn.events = self._turn_messages(tid)
        return turn

    async def start(self, text: str, **fields: Any) -> Turn:
        """A chat.message whose turn is not waited for: `await user.finish(turn)`."""
        answer = await self.client.request("chat.message", BOUND, text=text, **fields)
        return Turn(text, answer)

    async def finish(self, turn: Turn, timeout: float = BOUND) -> Turn:
        tid = turn.id
        assert tid is not None, "the message was refused"
        await self.client.wait_for(
            lambda _: any(isinstance(e, TurnEnd) for e in self.client.turn_events(tid)), timeout
        )
        turn.events = self._turn_messages(tid)
        return turn

    async def wait_for_event(self, turn: Turn, kind: str, timeout: float = BOUND) -> BotMessage:
        """The turn's first event of this `type` (e.g. "turn.delta"), once it came."""
        tid = turn.id
        assert tid is not None
        await self.client.wait_for(
            lambda _: any(e.type == kind for e in self._turn_messages(tid)), timeout
        )
        return next(e for e in self._turn_messages(tid) if e.type == kind)

    def _turn_messages(self, turn: str) -> list[BotMessage]:
        return [m for m in self.client.messages if getattr(m, "turn", None) == turn]

    async def approve(self, call_id: str, approved: bool = True) -> BotMessage:
        return await self.client.approve(call_id, approved)

    async def history(self) -> list[tuple[str, str]]:
        """This user's conversation, as the bot keeps it: (role, text), oldest first."""
        page = await self.client.request("history.get", BOUND)
        assert isinstance(page, HistoryPage), page
        return [(i.role, i.text) for i in page.items]

    @property
    def received(self) -> list[BotMessage]:
        return list(self.client.messages)

    def turns_received(self) -> list[BotMessage]:
        """Every turn event this user got (another user's would break privacy)."""
        return [m for m in self.client.messages if m.type.startswith(("turn.", "tool."))]

    async def drop(self) -> None:
        """Leave the room and join again with a resume: the conversation goes on, and
        what the bot sent meanwhile is replayed."""
        stack = self.kit.stack
        assert stack.server is not None
        await self.client.rejoin(
            stack.server.url, stack.token(self.identity, self.room), timeout=BOUND
        )

    async def new_bot(self, old: str) -> str:
        """After a worker restart: the next bot, handshaken with a resume."""
        return await self.client.wait_bot(exclude=old, timeout=2 * BOUND)

    async def leave(self) -> None:
        await self.client.disconnect()


# what varies with timing: how a reply is streamed (the deltas' sizes, the status
# changes; its `turn.reply` carries the whole text), and the handshake (a client says
# hello again when the bot does not answer at once, and each try may be answered)
_TIMING = ("turn.delta", "turn.status", "session.ready")


def normalise(messages: Iterable[BotMessage]) -> list[dict[str, Any]]:
    """A conversation's protocol messages with what changes from run to run replaced:
    ids, turn and call ids become stable names (`turn-1`, `call-1`...) in order of first
    appearance; timestamps, seqs, usage and expiry times go, and so do `turn.delta`,
    `turn.status` and `session.ready` (how many there are depends on timing)."""
    names: dict[str, str] = {}

    def name(value: str, kind: str) -> str:
        if value not in names:
            n = sum(1 for v in names.values() if v.startswith(kind)) + 1
            names[value] = f"{kind}-{n}"
        return names[value]

    out = []
    for m in messages:
        if m.type in _TIMING:
            continue
        data = m.model_dump(
            exclude={"v", "id", "ts", "seq", "usage", "expires_at"}, exclude_none=True
        )
        for key in ("turn", "call_id"):
            if isinstance(data.get(key), str):
                data[key] = name(data[key], "turn" if key == "turn" else "call")
        if isinstance(data.get("reply_to"), str):
            data["reply_to"] = name(data["reply_to"], "msg")
        out.append(data)
    return out


class Kit:
    """What a test holds (the `lkbot` fixture): users, faults, goldens, a judge."""

    def __init__(
        self,
        stack: Stack,
        *,
        golden_dir: Path,
        update_golden: bool = False,
        judge_llm: Callable[[str], Any] | None = None,
    ) -> None:
        self.stack = stack
        self.golden_dir = golden_dir
        self.update_golden = update_golden
        self._users: list[User] = []
        self._judge = judge_llm

    @property
    def can_judge(self) -> bool:
        """Whether an LLM to judge with is configured (else `judge` skips)."""
        return self._judge is not None

    def room(self) -> str:
        """A new room name: each test its own rooms."""
        return f"kit-{uuid.uuid4().hex[:8]}"

    async def user(self, identity: str, room: str | None = None, **token: Any) -> User:
        """A participant joined to `room` (a new one if None) who sees the bot."""
        user = User(self, identity, room or self.room())
        self._users.append(user)
        return await user.join(**token)

    async def restart_worker(self) -> None:
        """SIGTERM the bot's worker and start another (the users find the new bot)."""
        await self._replace(self.stack.restart_worker)

    async def kill_worker(self) -> None:
        """kill -9 the bot's worker and start another."""
        await self._replace(self.stack.kill_worker)

    async def _replace(self, how: Callable[[], None]) -> None:
        old = {u: u.client.bot_identity for u in self._users}
        await asyncio.to_thread(how)
        await asyncio.gather(*(u.new_bot(b) for u, b in old.items() if b is not None))

    def golden(self, name: str, messages: Iterable[BotMessage]) -> None:
        """Compare `messages` (normalised) with the golden transcript `name`; with
        --lkbot-update-golden (or a missing file: written, then failed once) write it."""
        path = self.golden_dir / f"{name}.json"
        got = normalise(messages)
        text = json.dumps(got, indent=1, ensure_ascii=False) + "\n"
        if self.update_golden or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if not self.update_golden:
                raise ExpectationError(f"golden transcript {path} written: check it, run again")
            return
        want = json.loads(path.read_text())
        if want != got:
            first = next(
                (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
                min(len(want), len(got)),
            )
            raise ExpectationError(
                f"transcript {name} differs from {path} at message {first}: "
                f"expected {json.dumps(want[first] if first < len(want) else None)}, "
                f"got {json.dumps(got[first] if first < len(got) else None)} "
                "(--lkbot-update-golden rewrites it)"
            )

    async def judge(self, reply: str | None, intent: str) -> None:
        """Ask an LLM whether `reply` fulfils `intent`; fail with its reason if not.
        Needs LKBOT_JUDGE_MODEL and an endpoint (OPENAI_API_KEY, or OPENAI_BASE_URL);
        without them the test is skipped, saying so."""
        if self._judge is None:
            import pytest

            pytest.skip(
                "judge: no LLM to judge with (set LKBOT_JUDGE_MODEL, and OPENAI_API_KEY or "
                "OPENAI_BASE_URL)"
            )
        verdict = await self._judge(
            "Does the reply fulfil the intent? Answer YES or NO on the first line, then one "
            f"sentence why.\nIntent: {intent}\nReply: {reply or '(no reply)'}"
        )
        if not str(verdict).strip().upper().startswith("YES"):
            raise ExpectationError(
                f"the judge says the reply does not fulfil {intent!r}: {verdict}"
            )

    async def aclose(self) -> None:
        await asyncio.gather(*(u.leave() for u in self._users), return_exceptions=True)


def openai_judge(model: str, base_url: str, api_key: str) -> Callable[[str], Any]:
    """A judge over any OpenAI-compatible endpoint (one chat completion per verdict)."""
    import aiohttp

    async def ask(prompt: str) -> str:
        body = {"model": model, "temperature": 0, "messages": [{"role": "user", "content": prompt}]}
        headers = {"Authorization": f"Bearer {api_key}"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{base_url.rstrip('/')}/chat/completions", json=body, headers=headers) as r,
        ):
            r.raise_for_status()
            answer = await r.json()
        return str(answer["choices"][0]["message"]["content"])

    return ask
