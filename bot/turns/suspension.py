"""A turn that waits for a person, as the store keeps it (v1.1, invariant 9).

When a turn asks for approval (`tool.approval_request`), what it would need to go on is
recorded with its lease (`Lease.suspended`) before the request goes out: the LLM step
it is in, the reply's text so far, the turn's own items of the model's context (its
texts, calls and their outputs; the rest is the stored history) and the calls of that
step not yet settled, the first of them the one waiting. A writer that claims the
conversation later (the worker died; the participant left and came back, e.g. a page
reload) continues the turn from it instead of ending it: the `tool.approve` it receives
settles the call, and the turn goes on from there with a model that sees what it saw.

The JSON form is this project's own (not livekit-agents' `ChatContext.to_dict`), so a
stored suspension outlives an SDK upgrade.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from livekit.agents import llm

log = logging.getLogger(__name__)

# A suspension bigger than this (a tool's long output earlier in the turn) stays in the
# worker's memory only: the approval then survives a reconnect, not a reload or the
# worker's death (logged).
MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class Suspension:
    step: int  # the LLM step whose calls these are
    reply: str  # the reply's text so far (its turn.delta went out)
    items: list[dict[str, Any]]  # the turn's own context items, oldest first
    calls: list[dict[str, str]]  # {call_id, name, arguments}: the first one waits
    expires_at: int  # ms since the epoch: when the first call's request expires

    def to_json(self) -> dict[str, Any] | None:
        """The stored form; None when it is over MAX_BYTES (not stored)."""
        data = asdict(self)
        size = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_BYTES:
            log.warning(
                "a turn waiting for approval is %d bytes (over %d): kept in memory only",
                size,
                MAX_BYTES,
            )
            return None
        return data

    @classmethod
    def from_json(cls, data: Any) -> Suspension | None:
        """None for anything that is not a suspension this code wrote."""
        try:
            s = cls(
                step=int(data["step"]),
                reply=str(data["reply"]),
                items=[dict(i) for i in data["items"]],
                calls=[
                    {k: str(c[k]) for k in ("call_id", "name", "arguments")} for c in data["calls"]
                ],
                expires_at=int(data["expires_at"]),
            )
            for item in s.items:
                _item(item)  # each one readable
        except (KeyError, TypeError, ValueError):  # pydantic's ValidationError too
            return None
        return s if s.calls else None

    def function_calls(self) -> list[llm.FunctionToolCall]:
        return [
            llm.FunctionToolCall(call_id=c["call_id"], name=c["name"], arguments=c["arguments"])
            for c in self.calls
        ]

    def replay(self, chat_ctx: llm.ChatContext) -> None:
        """The turn's own items back into the model's context, as they were."""
        chat_ctx.items.extend(_item(i) for i in self.items)


def suspend(
    step: int,
    reply: str,
    turn_items: list[llm.ChatItem],
    calls: list[llm.FunctionToolCall],
    expires_at: int,
) -> Suspension:
    return Suspension(
        step=step,
        reply=reply,
        items=[_stored(i) for i in turn_items],
        calls=[{"call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls],
        expires_at=expires_at,
    )


def _stored(item: llm.ChatItem) -> dict[str, Any]:
    if isinstance(item, llm.FunctionCall):
        return {"call": item.call_id, "name": item.name, "arguments": item.arguments}
    if isinstance(item, llm.FunctionCallOutput):
        return {
            "output": item.call_id,
            "name": item.name,
            "text": item.output,
            "error": item.is_error,
        }
    if isinstance(item, llm.ChatMessage):
        return {"say": item.text_content or ""}
    raise TypeError(f"a turn's context holds no {type(item).__name__}")


def _item(stored: dict[str, Any]) -> llm.ChatItem:
    if "call" in stored:
        return llm.FunctionCall(
            call_id=str(stored["call"]),
            name=str(stored["name"]),
            arguments=str(stored["arguments"]),
        )
    if "output" in stored:
        return llm.FunctionCallOutput(
            call_id=str(stored["output"]),
            name=str(stored["name"]),
            output=str(stored["text"]),
            is_error=bool(stored["error"]),
        )
    return llm.ChatMessage(role="assistant", content=[str(stored.get("say", ""))])
