"""One LLM step, streamed: what a turn asks the model and how the answer comes back.

Two ways, the same result (tests/test_llm_stream.py holds them to it):

- `DirectStep` (BOT_LLM_STREAM=direct, the default): one streamed HTTP request to the
  endpoint, URL and headers of the OpenAI client that livekit-plugins-openai uses,
  sent with aiohttp (`endpoint.shared_session`: httpx cost 2.5x its CPU per request),
  its body written as plain JSON and its server-sent events read as they come. It
  skips what a text bot does not use: the openai SDK's request transformation (it
  walks every message against the typed request definitions: 28% of the worker's CPU
  at one user with 40 context items),
  the SDK's typed chunks, and livekit-agents' `LLMStream` (a task, a channel, a span
  and a chunk object per piece: 34%). Errors and retries follow livekit-agents'
  (`APIConnectOptions`): a timeout is `APITimeoutError`, a status 4xx/5xx
  `APIStatusError`, anything else `APIConnectionError`; retryable until the first text
  or tool call came.
- `AgentsStep` (BOT_LLM_STREAM=agents, and for any model not made by
  `endpoint.build_llm`): livekit-agents' own `LLM.chat`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from livekit.agents import APIConnectionError, APIConnectOptions, APIStatusError, llm
from livekit.agents import APITimeoutError as AgentsTimeout
from livekit.agents.llm import utils as llm_utils
from livekit.agents.llm._provider_format.openai import to_chat_ctx

from ..config import Settings
from ..state.history import Entry
from .endpoint import Endpoint, endpoint_of, shared_session

log = logging.getLogger(__name__)

DRAIN_S = 1.0  # what is left of a response after `[DONE]` is read for at most this long
# prompt tokens, completion tokens, total tokens: what the endpoint reported
Tokens = tuple[int, int, int]
OnText = Callable[[str], None]


@dataclass(slots=True)
class Prompt:
    """What one step shows the model: the system prompt, the conversation's recent
    history, and the turn's own items so far (its texts, tool calls and outputs)."""

    system: str
    history: Sequence[Entry]
    own: llm.ChatContext


@dataclass(slots=True)
class StepResult:
    calls: list[llm.FunctionToolCall]
    tokens: Tokens | None  # None: the endpoint reported no usage


class Step(Protocol):
    async def __call__(self, prompt: Prompt, tools: list[llm.Tool], on_text: OnText) -> StepResult:
        """Stream one answer: its text to `on_text` as it comes, its tool calls and
        usage at the end."""
        ...


def chat_context(prompt: Prompt) -> llm.ChatContext:
    """The prompt as livekit-agents' ChatContext."""
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content=prompt.system)
    for entry in prompt.history:
        ctx.add_message(role=entry.role, content=entry.text)
    ctx.items.extend(prompt.own.items)
    return ctx


def messages(prompt: Prompt) -> list[dict[str, Any]]:
    """The prompt as Chat Completions messages, as livekit-plugins-openai writes them."""
    out: list[dict[str, Any]] = [{"role": "system", "content": prompt.system}]
    out.extend({"role": e.role, "content": e.text} for e in prompt.history)
    if prompt.own.items:
        own, _ = to_chat_ctx(prompt.own, inject_dummy_user_message=False)
        out.extend(own)
    return out


def tool_params(tools: Sequence[llm.Tool]) -> list[dict[str, Any]]:
    """The request's `tools`, as livekit-plugins-openai writes them (one per name, the
    last of a name wins, as in a ToolContext)."""
    by_name: dict[str, dict[str, Any]] = {}
    for tool in tools:
        if isinstance(tool, llm.RawFunctionTool):
            by_name[tool.info.name] = {"type": "function", "function": tool.info.raw_schema}
        elif isinstance(tool, llm.FunctionTool):
            by_name[tool.info.name] = llm_utils.build_strict_openai_schema(tool)
    return list(by_name.values())


class AgentsStep:
    """livekit-agents' `LLM.chat`: any model it supports."""

    def __init__(self, model: llm.LLM[Any], conn: APIConnectOptions) -> None:
        self._llm = model
        self._conn = conn

    async def __call__(self, prompt: Prompt, tools: list[llm.Tool], on_text: OnText) -> StepResult:
        calls: list[llm.FunctionToolCall] = []
        tokens: Tokens | None = None
        async with self._llm.chat(
            chat_ctx=chat_context(prompt), tools=tools, conn_options=self._conn
        ) as stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    u = chunk.usage
                    tokens = _add(tokens, (u.prompt_tokens, u.completion_tokens, u.total_tokens))
                if chunk.delta is None:
                    continue
                if chunk.delta.content:
                    on_text(chunk.delta.content)
                calls.extend(chunk.delta.tool_calls)
        return StepResult(calls, tokens)


def _add(a: Tokens | None, b: Tokens) -> Tokens:
    return b if a is None else (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def conn_options(settings: Settings) -> APIConnectOptions:
    """A step's timeout and retries: BOT_LLM_TIMEOUT, BOT_LLM_RETRIES (0.5 s apart)."""
    return APIConnectOptions(
        max_retry=settings.llm_retries, retry_interval=0.5, timeout=settings.llm_timeout
    )


def step_for(model: llm.LLM[Any], conn: APIConnectOptions, *, direct: bool = True) -> Step:
    """The direct step for a model `build_llm` made (unless `direct` is off), else
    livekit-agents' own."""
    endpoint = endpoint_of(model) if direct else None
    if endpoint is None:
        return AgentsStep(model, conn)
    return DirectStep(endpoint, conn)


class _Call:
    """A tool call being streamed (its arguments come in pieces)."""

    __slots__ = ("arguments", "call_id", "extra", "index", "name")

    def __init__(self, index: Any, call_id: str, name: str, arguments: str, extra: Any) -> None:
        self.index, self.call_id, self.name = index, call_id, name
        self.arguments, self.extra = arguments, extra

    def done(self) -> llm.FunctionToolCall:
        return llm.FunctionToolCall(
            arguments=self.arguments, name=self.name, call_id=self.call_id, extra=self.extra
        )


class _Answer:
    """One attempt's answer, read from its events (as livekit-agents' LLMStream reads
    the SDK's chunks: `inference/llm.py`, `_parse_choice`)."""

    def __init__(self, on_text: OnText) -> None:
        self.on_text = on_text
        self.calls: list[llm.FunctionToolCall] = []
        self.tokens: Tokens | None = None
        self.sent = False  # text or a call came: no retry from here
        self._call: _Call | None = None
        self._thinking = llm_utils.ThinkingTokenFilter()

    def event(self, data: dict[str, Any]) -> None:
        if "error" in data and data["error"] is not None:
            error = data["error"]
            message = error.get("message") if isinstance(error, dict) else None
            raise APIConnectionError(
                str(message or "An error occurred during streaming"), retryable=not self.sent
            )
        for choice in data.get("choices") or ():
            self._choice(choice)
        usage = data.get("usage")
        if usage:
            got = (
                usage.get("prompt_tokens") or 0,
                usage.get("completion_tokens") or 0,
                usage.get("total_tokens") or 0,
            )
            self.tokens = _add(self.tokens, got)

    def _choice(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta")
        if delta is None:
            return
        finish = choice.get("finish_reason")
        text = llm_utils.strip_thinking_tokens(
            delta.get("content"), self._thinking, final=finish is not None
        )
        for tool in delta.get("tool_calls") or ():
            function = tool.get("function")
            if not function:
                continue
            call, index = self._call, tool.get("index")
            if call is not None and tool.get("id") and index != call.index:
                self._complete()
            if function.get("name"):
                self._call = _Call(
                    index,
                    tool.get("id") or "",
                    function["name"],
                    function.get("arguments") or "",
                    tool.get("extra_content"),
                )
            elif function.get("arguments") and self._call is not None:
                self._call.arguments += function["arguments"]
        if finish in ("tool_calls", "stop") and self._call is not None:
            self._complete()
        if text:
            self.sent = True
            self.on_text(text)

    def _complete(self) -> None:
        assert self._call is not None
        self.calls.append(self._call.done())
        self._call = None
        self.sent = True


class DirectStep:
    """One streamed request to the shared OpenAI client's endpoint, on the loop's
    aiohttp session (`endpoint.shared_session`)."""

    def __init__(self, endpoint: Endpoint, conn: APIConnectOptions) -> None:
        self._endpoint = endpoint
        self._conn = conn
        # as httpx.Timeout(conn.timeout) in livekit-plugins-openai: connecting (with
        # waiting for a free connection) and each read bounded, not the whole answer
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=conn.timeout, sock_read=conn.timeout
        )

    async def __call__(self, prompt: Prompt, tools: list[llm.Tool], on_text: OnText) -> StepResult:
        body: dict[str, Any] = {
            "messages": messages(prompt),
            "model": self._endpoint.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self._endpoint.extra,
        }
        params = tool_params(tools)
        if params:
            body["tools"] = params
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        conn = self._conn
        for attempt in range(conn.max_retry + 1):
            answer = _Answer(on_text)
            try:
                await self._request(content, answer)
                return StepResult(answer.calls, answer.tokens)
            except APIStatusError as e:
                if e.status_code == 499:  # as livekit-agents: closed, quietly
                    return StepResult(answer.calls, answer.tokens)
                error: Exception = e
            except (APIConnectionError, AgentsTimeout) as e:
                error = e
            retryable = getattr(error, "retryable", False) and not answer.sent
            if conn.max_retry == 0 or not retryable:
                raise error
            if attempt == conn.max_retry:
                raise APIConnectionError(
                    f"failed to generate LLM completion after {conn.max_retry + 1} attempts"
                ) from error
            interval = conn._interval_for_retry(attempt)
            log.warning("LLM request failed: %s, retrying in %ss", error, interval)
            if interval > 0:
                await asyncio.sleep(interval)
        raise AssertionError("unreachable")

    async def _request(self, content: bytes, answer: _Answer) -> None:
        session = await shared_session(self._endpoint.base_url, self._endpoint.api_key)
        try:
            async with session.http.post(
                session.url,
                data=content,
                headers=session.headers,
                timeout=self._timeout,
                proxy=session.proxy,
                proxy_auth=session.proxy_auth,
            ) as resp:
                if resp.status >= 400:
                    raise _status_error(resp.status, await resp.read(), resp.headers)
                await _read_events(resp.content.iter_any(), answer)
        except TimeoutError as e:  # aiohttp's read and connect timeouts are TimeoutErrors
            raise AgentsTimeout(retryable=not answer.sent) from e
        except (APIStatusError, APIConnectionError):
            raise
        except Exception as e:
            raise APIConnectionError(retryable=not answer.sent) from e


def _status_error(status: int, raw: bytes, headers: Mapping[str, str]) -> APIStatusError:
    body: Any = None
    message = f"Error code: {status}"
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode(errors="replace") or None
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            message = f"Error code: {status} - {error['message']}"
    return APIStatusError(
        message, status_code=status, request_id=headers.get("x-request-id"), body=body
    )


async def _read_events(chunks: AsyncIterator[bytes], answer: _Answer) -> None:
    """Server-sent events: `data:` lines, an event ends at a blank line, `[DONE]` ends
    the answer. The body is then read to its end (at most DRAIN_S more): a response
    left unread closes its connection instead of giving it back to the pool, and a new
    connection per turn cost more than the rest of the request."""
    pending = b""
    data: list[bytes] = []
    async for chunk in chunks:
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop()
        for raw in lines:
            line = raw.rstrip(b"\r")
            if line:
                if line.startswith(b"data:"):
                    data.append(line[5:].lstrip(b" ") if len(line) > 5 else b"")
                continue  # event:, id:, retry:, comments
            if not data:
                continue
            payload = b"\n".join(data)
            data = []
            if payload == b"[DONE]":
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(DRAIN_S):
                        async for _ in chunks:
                            pass
                return
            answer.event(json.loads(payload))
    if data and (payload := b"\n".join(data)) != b"[DONE]":
        answer.event(json.loads(payload))
