"""Tools a client runs itself (protocol v1.1): what one sender declared in its hello,
and the calls that wait for its `tool.result`.

A declared tool is offered to the model in that sender's turns only. When the model
calls one, the engine sends `tool.call` (kept for a resume like any bot message, so a
client that reconnects gets it again) and waits here, at most the client tool timeout,
for the result. A result is taken once: a repeat is `duplicate`, one for a call that
is not waiting (unknown, timed out, cancelled) is `noop`; neither changes anything.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import llm
from pydantic import JsonValue

from ..protocol.errors import InvalidMessage, PayloadTooLarge
from ..protocol.inbound import ClientTool
from ..protocol.outbound import ToolInfo
from .pending import Pending, Taken


@dataclass(frozen=True)
class Outcome:
    """What the client answered: `output` (JSON) or an `error` message."""

    output: JsonValue = None
    error: str | None = None


def _never_called(**_: Any) -> Any:
    raise AssertionError("a client tool runs in the client: the engine sends tool.call")


class ClientTools:
    def __init__(self, *, max_tools: int, max_schema_bytes: int, max_result_bytes: int) -> None:
        self.max_tools = max_tools
        self.max_schema_bytes = max_schema_bytes
        self.max_result_bytes = max_result_bytes
        self.tools: dict[str, ClientTool] = {}
        self.described: list[llm.Tool] = []  # their schemas, as LLM requests send them
        self.calls: Pending[Outcome] = Pending()

    def declare(self, tools: list[ClientTool], *, taken: set[str]) -> None:
        """Replace the set; raises (and changes nothing) when it breaks a limit."""
        if len(tools) > self.max_tools:
            raise PayloadTooLarge(f"{len(tools)} tools declared; at most {self.max_tools}")
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            raise InvalidMessage("two declared tools have the same name")
        clash = sorted(set(names) & taken)
        if clash:
            raise InvalidMessage(f"tool name {clash[0]!r} is taken by one of the bot's tools")
        described: list[llm.Tool] = []
        for t in tools:
            schema = {"name": t.name, "description": t.description, "parameters": t.parameters}
            size = len(json.dumps(schema, ensure_ascii=False).encode())
            if size > self.max_schema_bytes:
                raise PayloadTooLarge(
                    f"tool {t.name!r} is {size} bytes as JSON; at most {self.max_schema_bytes}"
                )
            if t.parameters.get("type", "object") != "object":
                raise InvalidMessage(f"tool {t.name!r}: parameters must be an object schema")
            described.append(llm.function_tool(_never_called, raw_schema=schema))
        self.tools = {t.name: t for t in tools}
        self.described = described

    def infos(self, needs_approval: Callable[[str], bool] = lambda _: False) -> list[ToolInfo]:
        return [
            ToolInfo(
                name=t.name,
                description=t.description,
                source="client",
                approval=needs_approval(t.name),
            )
            for t in self.tools.values()
        ]

    def begin(self, call_id: str) -> asyncio.Future[Outcome]:
        return self.calls.begin(call_id)

    def end(self, call_id: str) -> None:
        self.calls.end(call_id)

    def settle(self, call_id: str, outcome: Outcome) -> Taken:
        """A `tool.result`: `accepted`, `duplicate` (this call was answered already) or
        `noop` (no such call is waiting)."""
        refused = self.calls.taken(call_id)
        if refused is not None:
            return refused
        size = len(json.dumps(outcome.output, ensure_ascii=False).encode())
        if size > self.max_result_bytes:
            raise PayloadTooLarge(
                f"the result is {size} bytes of JSON; at most {self.max_result_bytes} "
                "(send an error result, or a smaller one)"
            )
        return self.calls.settle(call_id, outcome)

    def waiting(self) -> list[str]:
        return self.calls.waiting()
