"""The store seam: what the bot needs from wherever conversations are kept."""

from __future__ import annotations

from typing import Protocol

from .model import Changes, Claim, ConversationKey, ConversationState


class Fleet(Protocol):
    """What the workers of one fleet know of each other, kept where their
    conversations are (every store implements it): a lease per worker (its liveness,
    on every machine that shares the store) and leader leases (one dispatch watchdog
    per fleet instead of one per process)."""

    async def beat(self, worker: str, ttl_ms: int) -> dict[str, int]:
        """Renew `worker`'s lease for `ttl_ms` (a negative ttl retires it: dead at
        once) and return every known worker's lease as ms left, by the store's own
        clock (≤ 0: expired). Leases expired for over an hour are forgotten."""
        ...

    async def lead(self, role: str, owner: str, ttl_ms: int) -> bool:
        """Take or renew the `role` lease for `owner`; False while another holds it."""
        ...

    async def serve_room(self, room: str, worker: str) -> None:
        """`worker`'s bot is in `room` (so that when the worker dies, the watchdog
        looks at its rooms only, not at every room of the LiveKit project)."""
        ...

    async def left_room(self, room: str, worker: str) -> None: ...

    async def rooms_of(self, worker: str) -> list[str]: ...

    async def forget_rooms(self, worker: str) -> None:
        """A dead worker's rooms were seen to: forget them."""
        ...


class Store(Fleet, Protocol):
    """Every backend keeps the same things with the same bounds (contract tests in
    tests/test_store_contract.py).

    The store is the one authority on who writes a conversation: `claim` gives the
    caller a fencing token, larger than any the store gave before, and makes every
    earlier claim on that conversation stale; `apply` writes a batch only if it carries
    the latest claim's token, in the same transaction as the check, and raises
    `Stale` otherwise. So two bots that both believe they serve a conversation can
    never both write it, and what a client was sent (published only once stored)
    always came from the one writer whose `seq` counter the store holds."""

    async def load(self, key: ConversationKey) -> ConversationState:
        """Read without claiming (tooling, the startup check)."""
        ...

    async def claim(self, key: ConversationKey, owner: str) -> Claim: ...

    async def apply(self, key: ConversationKey, changes: Changes) -> None: ...

    async def delete(self, key: ConversationKey) -> bool: ...

    async def keys(self) -> list[ConversationKey]: ...

    async def purge_expired(self) -> int:
        """Delete conversations untouched for longer than the TTL; how many went."""
        ...

    async def aclose(self) -> None: ...
