"""The turn engine: one chat turn through the LLM, with tool calls, as protocol events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import APIError, APITimeoutError, llm
from livekit.agents.llm.tool_context import FunctionToolInfo
from livekit.agents.llm.utils import execute_function_call
from pydantic import JsonValue

from ..config import Settings
from ..llm.stream import Prompt, conn_options, step_for
from ..llm.tools.names import tool_name
from ..protocol.errors import BotError, InternalError, LlmTimeout, LlmUnavailable
from ..protocol.outbound import ToolInfo, ToolStatus, Usage
from ..state.clock import now_ms
from ..state.history import History
from .client_tools import ClientTools
from .coalescer import DeltaCoalescer
from .emitter import TurnEmitter
from .pending import Pending
from .suspension import suspend
from .turn import _CURRENT, Turn

log = logging.getLogger(__name__)

# turn.end.reason of a turn stopped by BOT_TURN_TIMEOUT (its error.code: llm_timeout)
TURN_TIMEOUT = "turn_timeout"


# where a turn that waits for a person records what continues it (its lease in the
# store); None: it no longer waits
Suspend = Callable[[dict[str, Any] | None], None]


@dataclass
class _TurnState:
    turn: Turn
    usage: Usage | None = None  # only what the endpoint reports
    text_parts: list[str] = field(default_factory=list)
    deadline: asyncio.Timeout | None = None  # BOT_TURN_TIMEOUT; waits for a person pause it
    suspend: Suspend | None = None
    asked_until: int | None = None  # a continued turn: its first call was asked already


# Between two text-bearing LLM steps (text, tool call, more text), so that the
# streamed deltas still concatenate to exactly the final reply.
STEP_SEPARATOR = "\n\n"


def classify_llm_error(exc: BaseException) -> BotError:
    chain: BaseException | None = exc
    while chain is not None:
        if isinstance(chain, APITimeoutError | TimeoutError):
            return LlmTimeout("the language model did not answer in time")
        chain = chain.__cause__ or chain.__context__
    return LlmUnavailable("the language model is unavailable; try again shortly")


def _description(tool: llm.FunctionTool[..., Any] | llm.RawFunctionTool[..., Any]) -> str:
    info = tool.info
    if isinstance(info, FunctionToolInfo):
        return info.description or ""
    return str(info.raw_schema.get("description", ""))


def _output(call: llm.FunctionToolCall, text: str, *, is_error: bool) -> llm.FunctionCallOutput:
    return llm.FunctionCallOutput(
        name=call.name, call_id=call.call_id, output=text, is_error=is_error
    )


def _record(
    chat_ctx: llm.ChatContext, call: llm.FunctionToolCall, output: llm.FunctionCallOutput
) -> None:
    """The call and its output, as the model reads them in its next step."""
    chat_ctx.items.append(
        llm.FunctionCall(call_id=call.call_id, name=call.name, arguments=call.arguments)
    )
    chat_ctx.items.append(output)


def parse_arguments(raw: str) -> JsonValue:
    try:
        value: JsonValue = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return raw
    return value


def await_approval(
    approvals: Pending[Decision],
    emit: TurnEmitter,
    call: llm.FunctionToolCall,
    expires_at: int,
) -> asyncio.Future[Decision]:
    """`call` waits for the user's `tool.approve` from now on; a client that starts over
    is sent its `tool.approval_request` again (`Pending.ask_again`)."""
    args = parse_arguments(call.arguments)
    return approvals.begin(
        call.call_id, lambda: emit.approval_request(call.call_id, call.name, args, expires_at)
    )


def _never_called(**_: Any) -> Any:
    raise AssertionError("a schema-only tool is never called: the engine runs the tool itself")


_schemas: dict[tuple[object, ...], dict[str, Any]] = {}  # the process's, by _schema_key


def _schema_key(tool: llm.Tool, strict: bool) -> tuple[object, ...] | None:
    """What a tool's schema is made from, where that is known: its name, description and
    function's code (a room's own copy of a built-in tool, a closure over that room,
    makes the same schema as every other room's); None: not kept."""
    func: Any = getattr(tool, "__wrapped__", None)
    code = getattr(func, "__code__", None)
    info = getattr(tool, "info", None)
    if code is None or not isinstance(info, FunctionToolInfo):
        return None
    return (strict, info.name, info.description, code, func.__defaults__, func.__kwdefaults__)


def schema_only(tools: Sequence[llm.Tool], *, strict: bool = True) -> list[llm.Tool]:
    """The tools as the LLM request describes them, built once per process. livekit-agents
    turns each `FunctionTool`'s signature into a JSON schema for every request (a
    pydantic model made on the fly: 6.6% of the worker's CPU in the 20-user profile of
    docs/performance.md), and building them per room was 7.5% of the worker's Python
    time in a 50-room burst; a `RawFunctionTool` carries its schema as it is. The
    engine still runs the real tools (`execute_function_call` on its own ToolContext)."""
    described: list[llm.Tool] = []
    for tool in tools:
        key = _schema_key(tool, strict)
        try:
            schema = _schemas[key] if key is not None else None
        except (KeyError, TypeError):  # TypeError: unhashable defaults
            schema = None
        if schema is None:
            ctx = llm.ToolContext([tool])
            schema = ctx.parse_function_tools("openai", strict=strict)[0]["function"]
            if key is not None:
                with contextlib.suppress(TypeError):
                    _schemas[key] = schema
        described.append(llm.function_tool(_never_called, raw_schema=schema))
    return described


class TurnEngine:
    def __init__(
        self,
        settings: Settings,
        model: llm.LLM[Any],
        tools: Sequence[llm.Tool],
        *,
        mcp_names: frozenset[str] = frozenset(),
    ) -> None:
        self._settings = settings
        self._mcp_names = mcp_names  # tools that an MCP server runs (ToolInfo.source)
        self._tools = list(tools)
        self._tool_ctx = llm.ToolContext(self._tools)
        self._described = schema_only(self._tools)  # what each LLM request sends
        self._names = [tool_name(t) for t in self._tools]  # in the order of _described
        self._system_prompt = settings.system_prompt()
        self._step = step_for(model, conn_options(settings), direct=settings.llm_stream == "direct")

    def tool_infos(self, allowed: frozenset[str] | None = None) -> list[ToolInfo]:
        return [
            ToolInfo(
                name=name,
                description=_description(tool),
                source="mcp" if name in self._mcp_names else "server",
                approval=self._settings.needs_approval(name),
            )
            for name, tool in self._tool_ctx.function_tools.items()
            if allowed is None or name in allowed
        ]

    @property
    def tool_names(self) -> set[str]:
        return set(self._tool_ctx.function_tools)

    async def run(
        self,
        turn: Turn,
        emit: TurnEmitter,
        history: History,
        client: ClientTools | None = None,
        approvals: Pending[Decision] | None = None,
        suspend: Suspend | None = None,
    ) -> None:
        """Run a started turn to its `turn.end`; never raises, also when cancelled.

        The whole turn is bounded by BOT_TURN_TIMEOUT (an endless stream, a model that
        keeps calling tools): past it the turn ends `failed`, reason `turn_timeout`.
        A turn that `turn.resumed` (its suspension, from the store) continues where it
        waited for approval. A turn detached while it waits (`Turn.detached`: the
        sender left, the bot is leaving) sends nothing more: the store keeps it."""
        state = _TurnState(turn, suspend=suspend)
        coalescer = DeltaCoalescer(
            emit,
            interval=self._settings.delta_interval_ms / 1000,
            max_chars=self._settings.delta_max_chars,
        )
        _CURRENT.set(turn)  # the turn's own task: tools called from it see it
        deadline = state.deadline = asyncio.timeout(self._settings.turn_timeout)
        try:
            async with deadline:
                await self._steps(emit, history, coalescer, state, client, turn.allowed, approvals)
            coalescer.flush()
            reply = "".join(state.text_parts)
            emit.reply(reply)
            history.add("assistant", reply, turn.id)
            emit.end("completed", usage=state.usage)
        except asyncio.CancelledError:
            if turn.detached:
                return
            coalescer.flush()
            emit.end("cancelled", reason=turn.cancel_reason or "cancelled", usage=state.usage)
        except (APIError, TimeoutError) as e:
            coalescer.flush()
            if deadline.expired():
                err: BotError = LlmTimeout(
                    f"the turn took longer than {self._settings.turn_timeout:g}s "
                    "(BOT_TURN_TIMEOUT) and was stopped"
                )
                reason = TURN_TIMEOUT
            else:
                err = classify_llm_error(e)
                reason = err.code
            log.warning("turn failed: %s (%s)", reason, type(e).__name__)
            emit.end("failed", reason=reason, usage=state.usage, error=err.info())
        except Exception:
            coalescer.flush()
            log.exception("turn failed with an internal error")
            err = InternalError("the bot hit an internal error during this turn")
            emit.end("failed", reason=err.code, usage=state.usage, error=err.info())

    async def _steps(
        self,
        emit: TurnEmitter,
        history: History,
        coalescer: DeltaCoalescer,
        state: _TurnState,
        client: ClientTools | None,
        allowed: frozenset[str] | None,
        approvals: Pending[Decision] | None = None,
    ) -> None:
        """LLM calls and tool calls, until the model answers without calling a tool."""
        # the turn's own items (texts between tool calls, calls, outputs) after the
        # system prompt and the history
        chat_ctx = llm.ChatContext.empty()
        prompt = Prompt(
            self._system_prompt, history.recent(self._settings.context_max_items), chat_ctx
        )
        text_parts = state.text_parts
        first, calls_left = 0, None
        resumed = state.turn.resumed
        if resumed is not None:  # where it waited for approval, as the store kept it
            resumed.replay(chat_ctx)
            if resumed.reply:
                text_parts.append(resumed.reply)
            first, calls_left = resumed.step, resumed.function_calls()
            state.asked_until = resumed.expires_at
        else:
            emit.thinking_unless_answered(self._settings.thinking_after_ms / 1000)
        for step in range(first, self._settings.max_tool_steps + 1):
            if calls_left is None:
                tools = (
                    self._offered(client, allowed) if step < self._settings.max_tool_steps else []
                )
                first_part = len(text_parts)
                calls, state.usage = await self._llm_step(
                    prompt, tools, emit, coalescer, text_parts, state.usage
                )
                if not calls:
                    return
                coalescer.flush()
                step_text = "".join(text_parts[first_part:]).removeprefix(STEP_SEPARATOR)
                if step_text:
                    chat_ctx.add_message(role="assistant", content=step_text)
                emit.status("tool")
                calls_left = calls
            await self._calls(step, calls_left, emit, chat_ctx, state, client, allowed, approvals)
            calls_left = None
            emit.status("thinking")

    def _offered(
        self, client: ClientTools | None, allowed: frozenset[str] | None
    ) -> list[llm.Tool]:
        """What this step offers the model: the bot's tools this sender may use, and the
        sender's own (as declared now: a continued turn's client says hello again)."""
        offered = [
            d
            for d, name in zip(self._described, self._names, strict=True)
            if allowed is None or name in allowed
        ]
        return offered + (client.described if client is not None else [])

    async def _calls(
        self,
        step: int,
        calls: list[llm.FunctionToolCall],
        emit: TurnEmitter,
        chat_ctx: llm.ChatContext,
        state: _TurnState,
        client: ClientTools | None,
        allowed: frozenset[str] | None,
        approvals: Pending[Decision] | None,
    ) -> None:
        """One step's tool calls, in order; each is settled before the next runs."""
        for i, call in enumerate(calls):
            is_client = client is not None and call.name in client.tools
            may_run = is_client or allowed is None or call.name in allowed
            asked = state.asked_until is not None  # a continued turn's waiting call
            announce = True
            if approvals is not None and (
                asked or (may_run and self._settings.needs_approval(call.name))
            ):
                pending = (step, calls[i:])
                if not await self._approved(call, emit, chat_ctx, approvals, state, pending):
                    continue
                announce = False  # its turn.tool_call went before the request
                # a continued turn's client declares its tools again in its hello
                is_client = client is not None and call.name in client.tools
            if is_client:
                assert client is not None
                await self._run_client_tool(call, emit, chat_ctx, client, announce)
            else:
                await self._run_tool(call, emit, chat_ctx, allowed, announce)

    async def _llm_step(
        self,
        prompt: Prompt,
        tools: list[llm.Tool],
        emit: TurnEmitter,
        coalescer: DeltaCoalescer,
        text_parts: list[str],
        usage: Usage | None,
    ) -> tuple[list[llm.FunctionToolCall], Usage | None]:
        had_text = bool(text_parts)
        step_started = False

        def on_text(text: str) -> None:
            nonlocal step_started
            if not step_started:
                step_started = True
                emit.answered()  # before its text, so no `thinking` comes after it
                coalescer.new_step()
                if had_text:
                    text = STEP_SEPARATOR + text
            text_parts.append(text)
            coalescer.push(text)

        try:
            result = await self._step(prompt, tools, on_text)
        finally:
            emit.answered()  # with tool calls only, or not at all (the turn ends)
        if result.tokens is not None:
            before = usage or Usage()
            p, c, t = result.tokens
            usage = Usage(
                prompt_tokens=before.prompt_tokens + p,
                completion_tokens=before.completion_tokens + c,
                total_tokens=before.total_tokens + t,
            )
        return result.calls, usage

    async def _run_tool(
        self,
        call: llm.FunctionToolCall,
        emit: TurnEmitter,
        chat_ctx: llm.ChatContext,
        allowed: frozenset[str] | None = None,
        announce: bool = True,
    ) -> None:
        level = self._settings.tool_event_level(call.name)
        if level != "hidden" and announce:
            args = parse_arguments(call.arguments) if level == "full" else None
            emit.tool_call(call.call_id, call.name, args)
        status: ToolStatus
        try:
            if allowed is not None and call.name not in allowed:
                # never offered to this participant: refused, never run (invariant 10)
                text = f"the tool {call.name!r} is not available to this user"
                output = _output(call, text, is_error=True)
                status = "error"
            else:
                async with asyncio.timeout(self._settings.tool_timeout):
                    result = await execute_function_call(call, self._tool_ctx)
                output = result.fnc_call_out
                status = "error" if output.is_error else "ok"
        except TimeoutError:
            status = "timeout"
            text = f"the tool did not finish within {self._settings.tool_timeout:g}s"
            output = _output(call, text, is_error=True)
        except asyncio.CancelledError:
            if level != "hidden":
                emit.tool_result(call.call_id, "cancelled", None)
            raise
        if level != "hidden":
            emit.tool_result(call.call_id, status, output.output if level == "full" else None)
        _record(chat_ctx, call, output)

    async def _run_client_tool(
        self,
        call: llm.FunctionToolCall,
        emit: TurnEmitter,
        chat_ctx: llm.ChatContext,
        client: ClientTools,
        announce: bool = True,
    ) -> None:
        """`tool.call` to the client, then its `tool.result` (at most
        BOT_CLIENT_TOOL_TIMEOUT). Whatever happens, one `turn.tool_result` settles the
        call (invariant 8): a client tool's events are never hidden."""
        level = self._settings.tool_event_level(call.name)
        args = parse_arguments(call.arguments)
        if announce:
            emit.tool_call(call.call_id, call.name, args if level == "full" else None)
        future = client.begin(call.call_id)
        emit.client_call(call.call_id, call.name, args)
        status: ToolStatus
        try:
            async with asyncio.timeout(self._settings.client_tool_timeout):
                outcome = await future
            if outcome.error is not None:
                status, text = "error", outcome.error
            else:
                status = "ok"
                text = json.dumps(outcome.output, ensure_ascii=False)
        except TimeoutError:
            status = "timeout"
            text = f"the client did not answer within {self._settings.client_tool_timeout:g}s"
        except asyncio.CancelledError:
            emit.tool_result(call.call_id, "cancelled", None)
            raise
        finally:
            client.end(call.call_id)
        emit.tool_result(call.call_id, status, text if level == "full" else None)
        _record(chat_ctx, call, _output(call, text, is_error=status != "ok"))

    async def _approved(
        self,
        call: llm.FunctionToolCall,
        emit: TurnEmitter,
        chat_ctx: llm.ChatContext,
        approvals: Pending[Decision],
        state: _TurnState,
        pending: tuple[int, list[llm.FunctionToolCall]],
    ) -> bool:
        """Ask the user (`tool.approval_request`) and wait for `tool.approve`, at most
        BOT_APPROVAL_TIMEOUT; the wait does not count against BOT_TURN_TIMEOUT. False:
        denied or expired, settled here (the model is told; the tool does not run).

        Before the request goes out, the turn's suspension (`pending`: its step and the
        calls of it not yet settled) is recorded with its lease: a later writer of the
        conversation continues the turn from it. A continued turn (`state.asked_until`)
        waits for the request it made before, until that one expires."""
        turn = state.turn
        asked, state.asked_until = state.asked_until, None
        expires_at = (
            asked if asked is not None else now_ms() + round(self._settings.approval_timeout * 1000)
        )
        if state.suspend is not None:
            # before the request: what the client holds, the store holds
            step, calls = pending
            reply = "".join(state.text_parts)
            kept = suspend(step, reply, chat_ctx.items, calls, expires_at)
            state.suspend(kept.to_json())
        future = await_approval(approvals, emit, call, expires_at)
        if asked is None:
            args = parse_arguments(call.arguments)
            emit.tool_call(call.call_id, call.name, args)  # never hidden: the user decides on it
            emit.approval_request(call.call_id, call.name, args, expires_at)
            emit.status("awaiting_approval")
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeout = max(0.0, (expires_at - now_ms()) / 1000)
        deadline = state.deadline
        turn_ends = deadline.when() if deadline is not None else None
        if deadline is not None and turn_ends is not None:
            deadline.reschedule(turn_ends + timeout + 1)  # a person's time is not the turn's
        decision: Decision | None = None
        turn.suspended = True
        try:
            async with asyncio.timeout(timeout):
                decision = await future
        except TimeoutError:
            decision = None
        except asyncio.CancelledError:
            if not turn.detached:  # detached: the store keeps it waiting, nothing is sent
                emit.tool_result(call.call_id, "cancelled", None)
            raise
        finally:
            turn.suspended = False
            approvals.end(call.call_id)
            if deadline is not None and turn_ends is not None:
                deadline.reschedule(turn_ends + (loop.time() - started))
        if state.suspend is not None:
            state.suspend(None)
        if decision is not None and decision.approved:
            emit.status("tool")
            return True
        if decision is None:
            status: ToolStatus = "expired"
            text = "the user did not answer the approval request in time: the tool did not run"
        else:
            status = "denied"
            why = f" ({decision.reason})" if decision.reason else ""
            text = f"the user denied this call{why}: the tool did not run"
        emit.tool_result(call.call_id, status, text)
        _record(chat_ctx, call, _output(call, text, is_error=True))
        emit.status("thinking")
        return False


@dataclass(frozen=True)
class Decision:
    """A user's answer to a `tool.approval_request`."""

    approved: bool
    reason: str | None = None
