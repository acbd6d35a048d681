"""In-process store: for unit tests and `BOT_STORE=memory` (nothing survives the process)."""

from __future__ import annotations

import copy
import itertools

from .model import (
    DEFAULT_BOUNDS,
    FORGET_MS,
    Bounds,
    Changes,
    Claim,
    ConversationKey,
    ConversationState,
    Stale,
    forgotten,
    now_ms,
    trim_sent,
)


class MemoryStore:
    def __init__(self, bounds: Bounds = DEFAULT_BOUNDS) -> None:
        self.bounds = bounds
        self._data: dict[ConversationKey, ConversationState] = {}
        self._fences: dict[ConversationKey, int] = {}  # the latest claim's token
        self._claimed: dict[ConversationKey, int] = {}  # when last claimed (an order)
        self._tokens = itertools.count(1)  # never reused, whatever is deleted
        self._workers: dict[str, int] = {}  # worker -> lease until (ms)
        self._leaders: dict[str, tuple[str, int]] = {}  # role -> (owner, until ms)
        self._served: dict[str, set[str]] = {}  # worker -> rooms its bots are in

    def _expired(self, state: ConversationState, now: int) -> bool:
        return bool(self.bounds.ttl_s) and now - state.updated_ms > self.bounds.ttl_s * 1000

    async def load(self, key: ConversationKey) -> ConversationState:
        state = self._data.get(key)
        if state is None or self._expired(state, now_ms()):
            self._data.pop(key, None)
            self._fences.pop(key, None)
            self._claimed.pop(key, None)
            return ConversationState()
        return copy.deepcopy(state)

    async def claim(self, key: ConversationKey, owner: str) -> Claim:
        state = await self.load(key)
        fence = self._fences[key] = next(self._tokens)
        if key not in self._data:
            self._data[key] = ConversationState(updated_ms=now_ms())
        self._claimed[key] = next(self._tokens)
        cap = self.bounds.max_conversations
        if cap and len(self._data) > cap:
            for old in sorted(self._data, key=lambda k: self._claimed.get(k, 0))[
                : len(self._data) - cap
            ]:
                await self.delete(old)
        return Claim(fence, state)

    async def apply(self, key: ConversationKey, changes: Changes) -> None:
        if changes.fence is not None and self._fences.get(key) != changes.fence:
            raise Stale(f"conversation {key} was claimed by another writer")
        b = self.bounds
        s = self._data.setdefault(key, ConversationState())
        if changes.seq is not None:
            s.seq = max(s.seq, changes.seq)
        if changes.history_cleared:
            s.history.clear()
        s.history = (s.history + copy.deepcopy(changes.history))[-b.history_max :]
        if changes.sent_cleared:
            s.sent = []
        if changes.ids_forgotten:
            s.ids = [forgotten(x) for x in s.ids]
        s.sent = trim_sent(s.sent + changes.sent, b)
        s.ids = (s.ids + changes.ids)[-b.ids_max :]
        leases = {lease.turn: lease for lease in s.leases} | changes.leases
        s.leases = [leases[t] for t in sorted(leases) if t not in changes.ended]
        s.updated_ms = now_ms()

    async def delete(self, key: ConversationKey) -> bool:
        self._fences.pop(key, None)
        self._claimed.pop(key, None)
        return self._data.pop(key, None) is not None

    async def keys(self) -> list[ConversationKey]:
        return sorted(self._data, key=str)

    async def purge_expired(self) -> int:
        now = now_ms()
        gone = [k for k, s in self._data.items() if self._expired(s, now)]
        for k in gone:
            del self._data[k]
            self._fences.pop(k, None)
            self._claimed.pop(k, None)
        return len(gone)

    async def beat(self, worker: str, ttl_ms: int) -> dict[str, int]:
        now = now_ms()
        self._workers[worker] = now + ttl_ms
        for gone in [w for w, until in self._workers.items() if until < now - FORGET_MS]:
            del self._workers[gone]
        return {w: until - now for w, until in self._workers.items()}

    async def lead(self, role: str, owner: str, ttl_ms: int) -> bool:
        now = now_ms()
        holder, until = self._leaders.get(role, ("", 0))
        if holder not in ("", owner) and until > now:
            return False
        self._leaders[role] = (owner, now + ttl_ms)
        return True

    async def serve_room(self, room: str, worker: str) -> None:
        self._served.setdefault(worker, set()).add(room)

    async def left_room(self, room: str, worker: str) -> None:
        self._served.get(worker, set()).discard(room)

    async def rooms_of(self, worker: str) -> list[str]:
        return sorted(self._served.get(worker, ()))

    async def forget_rooms(self, worker: str) -> None:
        self._served.pop(worker, None)

    async def aclose(self) -> None:
        pass
