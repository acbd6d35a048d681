"""Chunk framing: a message whose JSON exceeds max_packet travels as `chunk` frames.

`data` of frame n (1-based) is the n-th slice of the whole message's JSON text;
the receiver concatenates the slices in order of `n` and parses the result.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .errors import Busy, InvalidMessage, PayloadTooLarge
from .inbound import ChunkFrame
from .outbound import Chunk


def _escaped_size(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


MAX_ID = 64


def frame_id(of: str, n: int) -> str:
    """`<of>.<n>`, with `of` cut so that the id fits the 64-character limit on ids.
    Frame ids are not idempotency keys and get no answer: only `of` must be exact."""
    suffix = f".{n}"
    return of[: MAX_ID - len(suffix)] + suffix


def _frame_json(of: str, n: int, total: int, data: str) -> str:
    frame = Chunk(id=frame_id(of, n), of=of, n=n, total=total, data=data)
    return frame.model_dump_json()


def split(text: str, *, of: str, max_packet: int) -> list[str]:
    """The frames (JSON texts) for `text`; each one's UTF-8 size is at most max_packet."""
    # Size the frame overhead for the widest n/total we could need.
    overhead = len(_frame_json(of, 10**6, 10**6, "").encode())
    budget = max_packet - overhead
    if budget < 64:
        raise ValueError(f"max_packet {max_packet} leaves no room for chunk data")
    pieces: list[str] = []
    pos = 0
    while pos < len(text):
        end = min(len(text), pos + budget)
        if _escaped_size(text[pos:end]) > budget:
            lo, hi = pos + 1, end  # largest end with a fitting slice, by bisection
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if _escaped_size(text[pos:mid]) <= budget:
                    lo = mid
                else:
                    hi = mid - 1
            end = lo
        pieces.append(text[pos:end])
        pos = end
    total = len(pieces)
    return [_frame_json(of, i, total, piece) for i, piece in enumerate(pieces, start=1)]


@dataclass
class _Assembly:
    total: int
    started: float
    parts: dict[int, str] = field(default_factory=dict)
    size: int = 0


class Reassembler:
    """Collects one sender's inbound frames; bounded in size, count and age."""

    def __init__(self, *, max_bytes: int, max_pending: int = 4, ttl: float = 30.0) -> None:
        self._max_bytes = max_bytes
        self._max_pending = max_pending
        self._ttl = ttl
        self._pending: dict[str, _Assembly] = {}

    def expire(self, now: float | None = None) -> list[str]:
        """Drop assemblies older than the ttl; returns their `of` ids."""
        now = time.monotonic() if now is None else now
        stale = [of for of, a in self._pending.items() if now - a.started > self._ttl]
        for of in stale:
            del self._pending[of]
        return stale

    def feed(self, frame: ChunkFrame) -> str | None:
        """Add a frame; returns the whole message text once every frame is in."""
        if frame.n > frame.total:
            raise InvalidMessage(f"chunk n={frame.n} exceeds total={frame.total}")
        asm = self._pending.get(frame.of)
        if asm is None:
            if len(self._pending) >= self._max_pending:
                raise Busy(f"at most {self._max_pending} chunked messages may be in flight")
            asm = self._pending[frame.of] = _Assembly(total=frame.total, started=time.monotonic())
        if frame.total != asm.total:
            del self._pending[frame.of]
            raise InvalidMessage("chunk total changed between frames of one message")
        if frame.n in asm.parts:
            return None  # a resent frame: already have it
        asm.parts[frame.n] = frame.data
        asm.size += len(frame.data.encode())
        if asm.size > self._max_bytes:
            del self._pending[frame.of]
            raise PayloadTooLarge(f"chunked message exceeds {self._max_bytes} bytes")
        if len(asm.parts) < asm.total:
            return None
        del self._pending[frame.of]
        return "".join(asm.parts[i] for i in range(1, asm.total + 1))


def receive(reassembler: Reassembler, payload: str | bytes) -> str | bytes | None:
    """A receiver's step: a whole message passes through; a chunk frame goes into the
    reassembler, and the joined message text comes out with its last frame."""
    obj = json.loads(payload)
    if not isinstance(obj, dict) or obj.get("type") != "chunk":
        return payload
    return reassembler.feed(ChunkFrame.model_validate(obj))
