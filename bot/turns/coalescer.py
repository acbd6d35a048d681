"""Streamed text in fewer packets: each step's first text at once, the rest by time and
size."""

from __future__ import annotations

import asyncio

from .emitter import TurnEmitter


class DeltaCoalescer:
    """A step's first text goes out in the same pass of the loop (with whatever else
    the same read of the stream held); later text is batched by time and size."""

    def __init__(self, emit: TurnEmitter, *, interval: float, max_chars: int) -> None:
        self._emit = emit
        self._interval = interval
        self._max = max_chars
        self._buf = ""
        self._at_once = True
        self._timer: asyncio.Handle | None = None

    def new_step(self) -> None:
        """Text of a new LLM step follows: what is held goes now, the next text at once
        (no `turn.status writing` announces it: the text itself does)."""
        self.flush()
        self._at_once = True

    def push(self, text: str) -> None:
        self._buf += text
        if self._interval <= 0 or len(self._buf) >= self._max:
            self.flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            if self._at_once:
                self._timer = loop.call_soon(self.flush)
            else:
                self._timer = loop.call_later(self._interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._buf:
            piece, self._buf = self._buf[: self._max], self._buf[self._max :]
            self._emit.delta(piece)
            self._at_once = False
