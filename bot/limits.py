"""Per-sender guards: a token bucket for floods, a bounded window of seen ids."""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .errors import DuplicateConflict


class TokenBucket:
    def __init__(self, *, burst: int, per_second: float) -> None:
        self._burst = float(burst)
        self._rate = per_second
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self) -> int:
        """Spend one token; returns 0, or the ms to wait until one is available."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0
        return max(1, int((1 - self._tokens) / self._rate * 1000))


def fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Seen:
    turn: str | None


class IdempotencyWindow:
    """The last N client ids of one sender, each with a fingerprint of its message."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: OrderedDict[str, tuple[str, str | None]] = OrderedDict()

    def check(self, msg_id: str, print_: str) -> Seen | None:
        """None if the id is new. Raises DuplicateConflict if it named another message."""
        entry = self._seen.get(msg_id)
        if entry is None:
            return None
        if entry[0] != print_:
            raise DuplicateConflict(
                f"id {msg_id!r} was already used for a different message; use a new id"
            )
        return Seen(turn=entry[1])

    def remember(self, msg_id: str, print_: str, turn: str | None = None) -> None:
        self._seen[msg_id] = (print_, turn)
        self._seen.move_to_end(msg_id)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)

    def clear(self) -> None:
        self._seen.clear()
