"""One conversation's bounded history, for the LLM context and for `history.get`."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import JsonValue

from ..protocol.outbound import HistoryItem
from .clock import now_ms
from .journal import Journal


@dataclass(frozen=True)
class Entry:
    role: Literal["user", "assistant"]
    text: str
    ts: int
    turn: str
    metadata: dict[str, JsonValue] | None = None


class History:
    def __init__(self, max_items: int, journal: Journal | None = None) -> None:
        self._items: deque[Entry] = deque(maxlen=max_items)
        self._journal = journal

    def restore(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            self._items.append(Entry(**item))

    def add(
        self,
        role: Literal["user", "assistant"],
        text: str,
        turn: str,
        metadata: dict[str, JsonValue] | None = None,
    ) -> None:
        entry = Entry(role=role, text=text, ts=now_ms(), turn=turn, metadata=metadata)
        self._items.append(entry)
        if self._journal is not None:
            self._journal.history_add(asdict(entry))

    def recent(self, n: int) -> list[Entry]:
        items = list(self._items)[-n:]
        # Never open the context with an assistant line cut from its question.
        while items and items[0].role == "assistant":
            items.pop(0)
        return items

    def page(
        self, *, limit: int, before: str | None, max_bytes: int = 1 << 62
    ) -> tuple[list[HistoryItem], bool]:
        """Up to `limit` items, oldest first, older than turn `before` (if given), as many
        of the newest as fit in `max_bytes` of JSON (at least one)."""
        items = list(self._items)
        if before is not None:
            cut = next((i for i, e in enumerate(items) if e.turn == before), len(items))
            items = items[:cut]
        page: list[HistoryItem] = []
        size = 0
        for e in reversed(items[-limit:]):
            item = HistoryItem(role=e.role, text=e.text, ts=e.ts, turn=e.turn, metadata=e.metadata)
            size += len(item.model_dump_json(exclude_none=True).encode())
            if page and size > max_bytes:
                # never half a turn: the next page (before the oldest turn here) has it
                while len(page) > 1 and page[-1].turn == e.turn:
                    page.pop()
                break
            page.append(item)
        page.reverse()
        return page, len(items) > len(page)

    def clear(self) -> None:
        self._items.clear()
        if self._journal is not None:
            self._journal.history_clear()

    def __len__(self) -> int:
        return len(self._items)
