"""One sender's turns: run one at a time, in arrival order; cancel queued or running.

The queue owns each turn's first and last event: it sends `turn.start`, and whatever
happens to the turn's task (it completes, fails, is cancelled before its first step,
or the queue itself is torn down) it makes sure exactly one `turn.end` follows. The
engine sends the `turn.end` it knows best (usage, error); the emitter keeps it to one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from ..state.history import History
from ..state.journal import Journal
from ..state.outbox import Outbox
from ..tasks import supervise
from .client_tools import ClientTools
from .emitter import TurnEmitter
from .engine import Decision, TurnEngine
from .pending import Pending
from .turn import Turn

log = logging.getLogger(__name__)


class TurnQueue:
    def __init__(
        self,
        engine: TurnEngine,
        outbox: Outbox,
        history: History,
        journal: Journal | None = None,
        *,
        client_tools: ClientTools | None = None,
        approvals: Pending[Decision] | None = None,
    ) -> None:
        self._engine = engine
        self._client_tools = client_tools
        self._approvals = approvals
        self._journal = journal
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
            self._task = supervise(self._loop(), name="turn-queue", on_crash=self._recover)

    def _recover(self, exc: BaseException) -> None:
        """_loop never raises by design; if it does, queued turns still run."""
        self._task = None
        if self._pending:
            self._task = supervise(self._loop(), name="turn-queue", on_crash=self._recover)

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
                try:
                    await self._run(turn, emit)
                finally:
                    if turn.task is not None and not turn.task.done():
                        turn.task.cancel()  # the queue itself is going away
                    if turn.detached:
                        pass  # waiting for approval: the store keeps it (its lease)
                    elif not emit.ended:
                        # cancelled before the engine's first step (Task.cancel() then
                        # skips the coroutine entirely), or the queue torn down
                        emit.end("cancelled", reason=turn.cancel_reason or "cancelled")
                    if self._journal is not None and not turn.detached:
                        self._journal.lease_end(turn.id)  # after its turn.end is recorded
                    self._current = None
        finally:
            self._current = None
            self._task = None
            self._end_unstarted()

    def detach_waiting(self) -> None:
        """The bot hands the room over: a turn waiting for approval is left to the store
        (the next bot continues it); turns queued behind it end (`shutdown`)."""
        current = self._current
        if current is not None and current.suspended:
            current.cancel("handing_over")
            for turn in self._pending:
                turn.cancel("shutdown")

    async def _run(self, turn: Turn, emit: TurnEmitter) -> None:
        if turn.resumed is None:  # a continued turn started on another writer
            emit.start()
        if turn.cancel_reason is not None:  # cancelled while queued: it still gets its end
            if turn.resumed is not None and not turn.detached:
                waiting = turn.resumed.calls[0]["call_id"]  # settled inside its turn
                emit.tool_result(waiting, "cancelled", None)
                if self._approvals is not None:
                    self._approvals.end(waiting)
            return
        journal = self._journal
        suspend = None
        if journal is not None:
            kept = turn.resumed.to_json() if turn.resumed is not None else None
            journal.lease_begin(turn.id, turn.request_id, turn.topic, suspended=kept)

            def suspend(kept: dict[str, Any] | None) -> None:
                journal.lease_suspend(turn.id, kept)

        if turn.resumed is None:
            self._history.add("user", turn.text, turn.id, turn.metadata)
        turn.task = asyncio.create_task(
            self._engine.run(
                turn, emit, self._history, self._client_tools, self._approvals, suspend
            ),
            name=f"turn-{turn.id}",
        )
        # wait() does not raise the turn's own cancellation into this loop
        await asyncio.wait({turn.task})

    def _end_unstarted(self) -> None:
        """Turns still queued when the loop stops abnormally get their start and end."""
        while self._pending:
            turn = self._pending.popleft()
            emit = TurnEmitter(self._outbox, turn)
            emit.start()
            emit.end("cancelled", reason=turn.cancel_reason or "cancelled")

    async def wait_idle(self, timeout: float) -> None:
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                log.warning("turns did not finish within %.1fs", timeout)
