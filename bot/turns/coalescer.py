"""Streamed text in fewer packets: the first piece at once, the rest by time and size."""

from __future__ import annotations

import asyncio

from .emitter import TurnEmitter


class DeltaCoalescer:
    """First text goes out at once; later text is batched by time and size."""

    def __init__(self, emit: TurnEmitter, *, interval: float, max_chars: int) -> None:
        self._emit = emit
        self._interval = interval
        self._max = max_chars
        self._buf = ""
        self._sent_any = False
        self._timer: asyncio.TimerHandle | None = None

    def push(self, text: str) -> None:
        self._buf += text
        if not self._sent_any or self._interval <= 0 or len(self._buf) >= self._max:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._buf:
            piece, self._buf = self._buf[: self._max], self._buf[self._max :]
            self._emit.delta(piece)
            self._sent_any = True
