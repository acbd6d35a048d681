"""The direct LLM stream (bot/llm/stream.py) against livekit-agents' own, on real HTTP.

DirectStep writes the request and reads the answer itself; these tests hold it to what
livekit-plugins-openai does with the same model: the same messages and tools in the
request, the same text, tool calls and usage out, the same errors and retries."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.agents import APIConnectionError, APIStatusError, APITimeoutError, llm

from bot.config import Settings
from bot.llm.endpoint import build_llm
from bot.llm.stream import (
    AgentsStep,
    DirectStep,
    Prompt,
    Step,
    StepResult,
    _Answer,
    _read_events,
    chat_context,
    conn_options,
    messages,
    step_for,
    tool_params,
)
from bot.state.history import Entry
from bot.testing.llm_server import ScriptedLLMServer
from bot.turns.engine import schema_only

from .harness import script

SYSTEM = "You are terse."


def prompt(user_text: str, history: list[tuple[str, str]] | None = None) -> Prompt:
    entries = [Entry(role, text, 0, f"t{i}") for i, (role, text) in enumerate(history or [])]  # type: ignore[arg-type]
    entries.append(Entry("user", user_text, 0, "tn"))
    return Prompt(SYSTEM, entries, llm.ChatContext.empty())


def settings_for(server: ScriptedLLMServer, **kw: Any) -> Settings:
    return Settings(openai_base_url=server.base_url, model="scripted", **kw)


@pytest.fixture
async def steps(llm_server: ScriptedLLMServer) -> AsyncIterator[dict[str, Step]]:
    model = build_llm(settings_for(llm_server, llm_retries=1))
    conn = conn_options(settings_for(llm_server, llm_retries=1))
    direct = step_for(model, conn)
    assert isinstance(direct, DirectStep)
    yield {"direct": direct, "agents": AgentsStep(model, conn)}
    await model.aclose()


async def run(step: Step, p: Prompt, tools: list[llm.Tool] | None = None) -> tuple[str, StepResult]:
    parts: list[str] = []
    result = await step(p, tools or [], parts.append)
    return "".join(parts), result


def calls_of(result: StepResult) -> list[tuple[str, str]]:
    return [(c.name, c.arguments) for c in result.calls]


@pytest.mark.parametrize(
    "text",
    [
        "hello there",
        script(say="one two three"),
        script(tool="calculate", args={"expression": "2+2"}),
        script(parallel=[{"name": "a", "args": {"x": 1}}, {"name": "b"}]),
        script(long=3000, chunk=7),
        script(say="no usage", usage=False),
    ],
)
async def test_the_direct_step_answers_as_livekit_agents_does(
    steps: dict[str, Step], llm_server: ScriptedLLMServer, text: str
) -> None:
    """Same text, same tool calls (names, arguments), same usage; and the request the
    server got is the same JSON but for the fields the SDK adds on its own."""
    got = {}
    for name, step in steps.items():
        before = len(llm_server.requests)
        got[name] = await run(step, prompt(text, [("user", "hi"), ("assistant", "hello")]))
        assert len(llm_server.requests) == before + 1
        got[name + "_request"] = llm_server.requests[-1]
    (d_text, d), (a_text, a) = got["direct"], got["agents"]
    assert d_text == a_text
    assert calls_of(d) == calls_of(a)
    assert d.tokens == a.tokens
    d_req, a_req = got["direct_request"], got["agents_request"]
    assert d_req["messages"] == a_req["messages"]
    assert {k: d_req[k] for k in ("model", "stream", "stream_options")} == {
        k: a_req[k] for k in ("model", "stream", "stream_options")
    }


async def test_a_step_with_tools_sends_the_same_tool_schemas(
    steps: dict[str, Step], llm_server: ScriptedLLMServer
) -> None:
    def lookup(order_id: str) -> str:
        """Look an order up."""
        return order_id

    tools = schema_only([llm.function_tool(lookup)])
    requests = []
    for step in steps.values():
        await run(step, prompt("hello"), tools)
        requests.append(llm_server.requests[-1])
    assert requests[0]["tools"] == requests[1]["tools"]
    ctx = llm.ToolContext(tools)
    assert tool_params(tools) == ctx.parse_function_tools("openai", strict=True)


@st.composite
def own_items(draw: st.DrawFn) -> list[llm.ChatItem]:
    """A turn's own items, as the engine records them: step texts, calls, outputs."""
    items: list[llm.ChatItem] = []
    for step in range(draw(st.integers(0, 3))):
        text = draw(st.text(max_size=20))
        if text:
            items.append(llm.ChatMessage(role="assistant", content=[text]))
        for i in range(draw(st.integers(1, 2))):
            call_id = f"call_{step}_{i}"
            args = json.dumps(draw(st.dictionaries(st.text(max_size=5), st.integers())))
            items.append(llm.FunctionCall(call_id=call_id, name=f"tool{i}", arguments=args))
            out = draw(st.text(max_size=30))
            items.append(
                llm.FunctionCallOutput(
                    name=f"tool{i}", call_id=call_id, output=out, is_error=draw(st.booleans())
                )
            )
    return items


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=st.lists(
        st.tuples(st.sampled_from(["user", "assistant"]), st.text(max_size=40)), max_size=8
    ),
    own=own_items(),
)
def test_messages_are_livekit_plugins_openais(
    history: list[tuple[str, str]], own: list[llm.ChatItem]
) -> None:
    """The request's messages, for any history and any turn's own items, are what
    livekit-agents' openai formatter writes for the same ChatContext."""
    p = prompt("now", history)
    p.own.items.extend(own)
    expected, _ = chat_context(p).to_provider_format(format="openai")
    assert messages(p) == expected


class Body:
    """A response body that arrives in the given pieces."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


def sse(*events: dict[str, Any] | str) -> bytes:
    return b"".join(
        f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events
    )


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


STREAM = sse(
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hé "}),
    chunk({"content": "there"}),
    chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "a", "arguments": "{"}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"x": 1}'}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "b", "arguments": ""}}]}),
    chunk({}, "tool_calls"),
    {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
    "[DONE]",
)


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(0, len(STREAM)), max_size=12), crlf=st.booleans())
async def test_events_cut_anywhere_read_the_same(cuts: list[int], crlf: bool) -> None:
    """However the body is cut into reads (inside a line, inside a UTF-8 character,
    between the two newlines), and with CRLF line ends, the answer is the same."""
    body = STREAM.replace(b"\n", b"\r\n") if crlf else STREAM
    points = sorted({0, len(body), *(min(c, len(body)) for c in cuts)})
    pieces = [body[a:b] for a, b in itertools.pairwise(points)]
    texts: list[str] = []
    answer = _Answer(texts.append)
    await _read_events(Body(pieces).chunks(), answer)
    assert "".join(texts) == "Hé there"
    assert [(c.call_id, c.name, c.arguments) for c in answer.calls] == [
        ("c1", "a", '{"x": 1}'),
        ("c2", "b", ""),
    ]
    assert answer.tokens == (3, 4, 7)


async def test_an_error_event_in_the_stream_is_a_connection_error() -> None:
    answer = _Answer(lambda _: None)
    body = Body([sse({"error": {"message": "overloaded"}})])
    with pytest.raises(APIConnectionError, match="overloaded"):
        await _read_events(body.chunks(), answer)


async def test_http_errors_are_retried_as_livekit_agents_retries_them(
    steps: dict[str, Step], llm_server: ScriptedLLMServer
) -> None:
    """BOT_LLM_RETRIES=1: a 500 is tried twice, then fails; a 400 once (not retryable)."""
    direct = steps["direct"]
    for status, tries in ((500, 2), (400, 1)):
        before = len(llm_server.requests)
        with pytest.raises((APIStatusError, APIConnectionError)) as raised:
            await run(direct, prompt(script(status=status)))
        assert len(llm_server.requests) - before == tries
        chain: BaseException | None = raised.value
        codes = []
        while chain is not None:
            codes.append(getattr(chain, "status_code", None))
            chain = chain.__cause__
        assert status in codes


async def test_a_stream_that_stalls_after_text_times_out_without_a_retry(
    llm_server: ScriptedLLMServer,
) -> None:
    """Text already went to the user: a retry would repeat it, so there is none."""
    s = settings_for(llm_server, llm_retries=2, llm_timeout=0.5)
    model = build_llm(s)
    direct = step_for(model, conn_options(s))
    before = len(llm_server.requests)
    texts: list[str] = []
    with pytest.raises(APITimeoutError):
        await direct(prompt(script(stall=True)), [], texts.append)
    assert texts and len(llm_server.requests) - before == 1
    await model.aclose()


async def test_unknown_models_and_the_agents_setting_use_livekit_agents(
    llm_server: ScriptedLLMServer,
) -> None:
    s = settings_for(llm_server)
    model = build_llm(s)
    conn = conn_options(s)
    assert isinstance(step_for(model, conn), DirectStep)
    assert isinstance(step_for(model, conn, direct=False), AgentsStep)
    from livekit.plugins import openai

    foreign = openai.LLM(model="scripted", base_url=llm_server.base_url, api_key="x")
    assert isinstance(step_for(foreign, conn), AgentsStep)  # not made by build_llm
    await model.aclose()
    await foreign.aclose()


async def test_turns_through_livekit_agents_still_work(make_bot: Any) -> None:
    """BOT_LLM_STREAM=agents: a whole turn with a tool call, as before."""
    from .harness import chat

    bot = await make_bot(llm_stream="agents")
    bot.send("alice", chat(script(tool="calculate", args={"expression": "6*7"}, then="42")))
    msgs = await bot.turn_ends("alice")
    types = [m.type for m in msgs]
    assert "turn.tool_result" in types and types[-1] == "turn.end"
    assert msgs[-1].status == "completed"  # type: ignore[union-attr]


async def test_one_connection_serves_turn_after_turn(
    steps: dict[str, Step], llm_server: ScriptedLLMServer
) -> None:
    """Each answer gives its connection back to the pool, whole (its body is read to
    the end after `[DONE]`): a new TCP connection per turn cost more than the rest of
    the request (httpx closed a response left unread)."""
    before = len(llm_server.peers)
    for _ in range(4):
        await run(steps["direct"], prompt(script(say="again")))
    assert len(set(llm_server.peers[before:])) == 1  # one client address: one connection
