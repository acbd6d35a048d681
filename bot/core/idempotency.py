"""A bounded window of one sender's message ids: a retried id starts nothing new."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..protocol.errors import DuplicateConflict
from ..state.journal import Journal
from ..store import SeenId


def fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Seen:
    turn: str | None


class IdempotencyWindow:
    """The last N client ids of one sender, each with a fingerprint of its message."""

    def __init__(self, size: int, journal: Journal | None = None) -> None:
        self._size = size
        self._seen: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
        self._journal = journal

    def restore(self, seen: list[SeenId]) -> None:
        for s in seen:
            self._put(s.id, s.print, s.turn)

    def check(self, msg_id: str, print_: str) -> Seen | None:
        """None if the id is new. Raises DuplicateConflict if it named another message."""
        entry = self._seen.get(msg_id)
        if entry is None:
            return None
        if entry[0] and entry[0] != print_:  # no print: forgotten by a history.reset
            raise DuplicateConflict(
                f"id {msg_id!r} was already used for a different message; use a new id"
            )
        return Seen(turn=entry[1])

    def remember(self, msg_id: str, print_: str, turn: str | None = None) -> None:
        self._put(msg_id, print_, turn)
        if self._journal is not None:
            self._journal.remember(SeenId(msg_id, print_, turn))

    def forget_texts(self) -> None:
        """history.reset: keep the ids (a retry still starts nothing) but no print of
        their messages; a reused id is then taken for a retry, whatever it carries."""
        for msg_id, (_print, turn) in self._seen.items():
            self._seen[msg_id] = ("", turn)

    def _put(self, msg_id: str, print_: str, turn: str | None) -> None:
        self._seen[msg_id] = (print_, turn)
        self._seen.move_to_end(msg_id)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
