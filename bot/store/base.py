"""The store seam: what the bot needs from wherever conversations are kept."""

from __future__ import annotations

from typing import Protocol

from .model import Changes, ConversationKey, ConversationState, Lease


class Store(Protocol):
    """Every backend keeps the same things with the same bounds (contract tests in
    tests/test_store_contract.py). Calls are per conversation; one conversation's
    `apply` calls come from one writer in order."""

    async def load(self, key: ConversationKey) -> ConversationState: ...

    async def apply(self, key: ConversationKey, changes: Changes) -> None: ...

    async def lease(self, key: ConversationKey, turn: str) -> Lease | None: ...

    async def delete(self, key: ConversationKey) -> bool: ...

    async def keys(self) -> list[ConversationKey]: ...

    async def purge_expired(self) -> int:
        """Delete conversations untouched for longer than the TTL; how many went."""
        ...

    async def aclose(self) -> None: ...
