"""In-process store: for unit tests and `BOT_STORE=memory` (nothing survives the process)."""

from __future__ import annotations

import copy

from .model import (
    DEFAULT_BOUNDS,
    Bounds,
    Changes,
    ConversationKey,
    ConversationState,
    Lease,
    now_ms,
)


class MemoryStore:
    def __init__(self, bounds: Bounds = DEFAULT_BOUNDS) -> None:
        self.bounds = bounds
        self._data: dict[ConversationKey, ConversationState] = {}

    def _expired(self, state: ConversationState, now: int) -> bool:
        return bool(self.bounds.ttl_s) and now - state.updated_ms > self.bounds.ttl_s * 1000

    async def load(self, key: ConversationKey) -> ConversationState:
        state = self._data.get(key)
        if state is None or self._expired(state, now_ms()):
            self._data.pop(key, None)
            return ConversationState()
        return copy.deepcopy(state)

    async def apply(self, key: ConversationKey, changes: Changes) -> None:
        b = self.bounds
        s = self._data.setdefault(key, ConversationState())
        if changes.seq is not None:
            s.seq = max(s.seq, changes.seq)
        if changes.history_cleared:
            s.history.clear()
        s.history = (s.history + copy.deepcopy(changes.history))[-b.history_max :]
        s.sent = (s.sent + changes.sent)[-b.sent_max :]
        s.ids = (s.ids + changes.ids)[-b.ids_max :]
        leases = {lease.turn: lease for lease in s.leases} | changes.leases
        s.leases = [leases[t] for t in sorted(leases) if t not in changes.ended]
        s.updated_ms = now_ms()

    async def lease(self, key: ConversationKey, turn: str) -> Lease | None:
        state = self._data.get(key)
        return next((x for x in state.leases if x.turn == turn), None) if state else None

    async def delete(self, key: ConversationKey) -> bool:
        return self._data.pop(key, None) is not None

    async def keys(self) -> list[ConversationKey]:
        return sorted(self._data, key=str)

    async def purge_expired(self) -> int:
        now = now_ms()
        gone = [k for k, s in self._data.items() if self._expired(s, now)]
        for k in gone:
            del self._data[k]
        return len(gone)

    async def aclose(self) -> None:
        pass
