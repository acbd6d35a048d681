"""A bot on the in-memory transport, talking to the real HTTP scripted LLM server."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from bot.config import Settings
from bot.core.dispatcher import Dispatcher
from bot.llm.endpoint import build_llm
from bot.llm.tools import load_tools
from bot.protocol.outbound import BotMessage
from bot.store import Store
from bot.testing.memory import MemoryTransport
from bot.testing.script import script as script
from bot.turns.engine import TurnEngine

DIRECT = {"ack", "session.ready", "history.page", "pong", "error"}
Pred = Callable[[list[BotMessage]], bool]
_ids = itertools.count(1)


def chat(text: str, id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "type": "chat.message", "id": id or f"c{next(_ids)}", "text": text, **extra}


def msg(type_: str, id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "type": type_, "id": id or f"c{next(_ids)}", **extra}


class Harness:
    def __init__(
        self,
        settings: Settings,
        transport: MemoryTransport,
        *,
        store: Store | None = None,
        room: str = "",
        extra_tools: list[Any] | None = None,
        mcp_names: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.llm = build_llm(settings)
        tools = load_tools(settings, transport.peers) + (extra_tools or [])
        self.engine = TurnEngine(settings, self.llm, tools, mcp_names=mcp_names)
        self.dispatcher = Dispatcher(settings, transport, self.engine, store=store, room=room)
        transport.attach(self.dispatcher)

    def send(
        self, sender: str | None, body: dict[str, Any] | bytes | str, topic: str = "lkbot"
    ) -> None:
        self.transport.inject(sender, body, topic)

    def messages(self, who: str) -> list[BotMessage]:
        return self.transport.messages(who)

    async def until(self, who: str, pred: Pred, timeout: float = 10.0) -> list[BotMessage]:
        return await self.transport.wait_for(who, pred, timeout)

    async def answer(self, who: str, msg_id: str) -> BotMessage:
        msgs = await self.until(who, lambda ms: any(direct_answers(ms, msg_id)))
        return direct_answers(msgs, msg_id)[0]

    async def turn_ends(self, who: str, n: int = 1) -> list[BotMessage]:
        return await self.until(who, lambda ms: count(ms, "turn.end") >= n)

    async def close(self) -> None:
        await self.dispatcher.aclose()
        await self.llm.aclose()


def direct_answers(msgs: list[BotMessage], msg_id: str) -> list[BotMessage]:
    return [m for m in msgs if m.type in DIRECT and getattr(m, "reply_to", None) == msg_id]


def count(msgs: list[BotMessage], type_: str) -> int:
    return sum(1 for m in msgs if m.type == type_)


def of_turn(msgs: list[BotMessage], turn: str) -> list[BotMessage]:
    return [m for m in msgs if getattr(m, "turn", None) == turn and m.type.startswith("turn.")]


def assert_settled_once(msgs: list[BotMessage], asked: list[Any], why: object = "") -> None:
    """Invariant 8: each of `asked` (`tool.call`s, `tool.approval_request`s) is settled
    by exactly one `turn.tool_result` of its call_id, after it and before `turn.end`."""
    end = next(i for i, m in enumerate(msgs) if m.type == "turn.end")
    for a in asked:
        settled = [
            i
            for i, m in enumerate(msgs)
            if m.type == "turn.tool_result" and getattr(m, "call_id", None) == a.call_id
        ]
        assert len(settled) == 1, (why, [m.type for m in msgs])
        assert msgs.index(a) < settled[0] < end
