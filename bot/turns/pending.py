"""Calls of a turn that wait for something the sender sends: a client tool's
`tool.result`, a user's `tool.approve`. One answer is taken per call: a repeat is
`duplicate`, an answer for a call that is not waiting (unknown, settled by a timeout or
a cancel, someone else's) is `noop`; neither changes anything."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
Taken = Literal["accepted", "duplicate", "noop"]
SETTLED_KEPT = 256  # call ids remembered after their answer, to tell a repeat


class Pending(Generic[T]):
    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[T]] = {}
        self._ask: dict[str, Callable[[], None]] = {}
        self._settled: OrderedDict[str, None] = OrderedDict()

    def begin(self, call_id: str, ask: Callable[[], None] | None = None) -> asyncio.Future[T]:
        """Wait for an answer to `call_id`; `ask` sends the request for it again
        (`ask_again`). A call already waiting (one continued from the store waits from
        the moment it is read, before its turn runs) keeps its future and its answer."""
        future = self._waiting.get(call_id)
        if future is None:
            future = self._waiting[call_id] = asyncio.get_running_loop().create_future()
        if ask is not None:
            self._ask[call_id] = ask
        return future

    def ask_again(self) -> None:
        """Send every waiting call's request again (a client that starts over without a
        resume, e.g. a reloaded page, holds none of them)."""
        for ask in list(self._ask.values()):
            ask()

    def end(self, call_id: str) -> None:
        """The call is settled (answered, timed out, cancelled): later answers are noop."""
        self._ask.pop(call_id, None)
        future = self._waiting.pop(call_id, None)
        if future is not None and not future.done():
            future.cancel()

    def taken(self, call_id: str) -> Taken | None:
        """What an answer for `call_id` would be, if it cannot be taken (None: it can)."""
        if call_id in self._settled:
            return "duplicate"
        future = self._waiting.get(call_id)
        if future is None or future.done():
            return "noop"
        return None

    def settle(self, call_id: str, value: T) -> Taken:
        refused = self.taken(call_id)
        if refused is not None:
            return refused
        self._waiting[call_id].set_result(value)
        self._settled[call_id] = None
        while len(self._settled) > SETTLED_KEPT:
            self._settled.popitem(last=False)
        return "accepted"

    def waiting(self) -> list[str]:
        return list(self._waiting)
