"""One sender's turns: run one at a time, in arrival order; cancel queued or running."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from ..core.history import History
from ..core.outbox import Outbox
from .emitter import TurnEmitter
from .engine import TurnEngine
from .turn import Turn

log = logging.getLogger(__name__)


class TurnQueue:
    def __init__(self, engine: TurnEngine, outbox: Outbox, history: History) -> None:
        self._engine = engine
        self._outbox = outbox
        self._history = history
        self._pending: deque[Turn] = deque()
        self._current: Turn | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._pending)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def submit(self, turn: Turn) -> None:
        self._pending.append(turn)
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="turn-queue")

    def cancel(self, turn_id: str, reason: str) -> bool:
        for turn in self._all():
            if turn.id == turn_id and turn.cancel_reason is None:
                turn.cancel(reason)
                return True
        return False

    def cancel_all(self, reason: str) -> bool:
        live = [t for t in self._all() if t.cancel_reason is None]
        for turn in live:
            turn.cancel(reason)
        return bool(live)

    def _all(self) -> list[Turn]:
        return ([self._current] if self._current else []) + list(self._pending)

    async def _loop(self) -> None:
        try:
            while self._pending:
                turn = self._current = self._pending.popleft()
                emit = TurnEmitter(self._outbox, turn)
                emit.start()
                if turn.cancel_reason is not None:
                    # cancelled while queued: it still gets its start and end
                    emit.end("cancelled", reason=turn.cancel_reason)
                    continue
                self._history.add("user", turn.text, turn.id, turn.metadata)
                turn.task = asyncio.create_task(
                    self._engine.run(turn, emit, self._history), name=f"turn-{turn.id}"
                )
                await turn.task
        finally:
            self._current = None
            self._task = None

    async def wait_idle(self, timeout: float) -> None:
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                log.warning("turns did not finish within %.1fs", timeout)
