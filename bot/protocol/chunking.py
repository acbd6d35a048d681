"""Chunk framing: a message whose JSON exceeds max_packet travels as `chunk` frames.

`data` of frame n (1-based) is the n-th slice of the whole message's JSON text;
the receiver concatenates the slices in order of `n` and parses the result.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .errors import BotError, Busy, InvalidMessage, PayloadTooLarge
from .inbound import ChunkFrame
from .outbound import Chunk


def _escaped_size(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


MAX_ID = 64
# every frame but a message's only one carries at least this many bytes when its
# sender fills its packets (`split` needs 64 bytes of room for data in a packet)
MIN_FRAME_BYTES = 64


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
    """Collects one sender's inbound frames; bounded in size, count and age.

    A chunked message (`of`) is answered once: after it is complete, or refused with an
    error, later frames of it are dropped without another answer (remembered for `ttl`,
    at most `max_refused` of them). A client resends a whole message under a new `of`;
    the message inside keeps its id, so idempotency still applies."""

    def __init__(
        self, *, max_bytes: int, max_pending: int = 4, ttl: float = 30.0, max_refused: int = 64
    ) -> None:
        self._max_bytes = max_bytes
        self._max_pending = max_pending
        self._ttl = ttl
        self._max_refused = max_refused
        self._pending: dict[str, _Assembly] = {}
        self._refused: dict[str, float] = {}  # of -> when; insertion-ordered

    @property
    def pending(self) -> frozenset[str]:
        """The `of` ids of messages being assembled."""
        return frozenset(self._pending)

    def in_progress(self, of: str) -> bool:
        """Frames of a message already started (or refused) are not new messages."""
        return of in self._pending or of in self._refused

    def expire(self, now: float | None = None) -> list[str]:
        """Drop assemblies older than the ttl; returns their `of` ids."""
        now = time.monotonic() if now is None else now
        stale = [of for of, a in self._pending.items() if now - a.started > self._ttl]
        for of in stale:
            del self._pending[of]
            self.refuse(of, now)
        for of in [of for of, t in self._refused.items() if now - t > self._ttl]:
            del self._refused[of]
        return stale

    def refuse(self, of: str, now: float | None = None) -> None:
        """Forget a message (answered, or refused) and drop its later frames silently."""
        self._pending.pop(of, None)
        self._refused[of] = time.monotonic() if now is None else now
        while len(self._refused) > self._max_refused:
            del self._refused[next(iter(self._refused))]

    def feed(self, frame: ChunkFrame) -> str | None:
        """Add a frame; returns the whole message text once every frame is in."""
        if frame.of in self._refused:
            return None  # already answered with an error
        try:
            return self._feed(frame)
        except BotError:
            self.refuse(frame.of)
            raise

    @property
    def max_frames(self) -> int:
        """The most frames a message may have: every frame carries some data, and a
        splitter that fills its packets puts at least MIN_FRAME_BYTES in each (a few
        more for the last, partial ones)."""
        return self._max_bytes // MIN_FRAME_BYTES + 4

    def _feed(self, frame: ChunkFrame) -> str | None:
        if frame.n > frame.total:
            raise InvalidMessage("chunk n exceeds total")
        if frame.total > self.max_frames:
            raise PayloadTooLarge(
                f"a chunked message has at most {self.max_frames} frames "
                f"(at most {self._max_bytes} bytes)"
            )
        if not frame.data:
            raise InvalidMessage("a chunk frame must carry data")
        asm = self._pending.get(frame.of)
        if asm is None:
            if len(self._pending) >= self._max_pending:
                raise Busy(f"at most {self._max_pending} chunked messages may be in flight")
            asm = self._pending[frame.of] = _Assembly(total=frame.total, started=time.monotonic())
        if frame.total != asm.total:
            raise InvalidMessage("chunk total changed between frames of one message")
        if frame.n in asm.parts:
            return None  # a resent frame: already have it
        asm.parts[frame.n] = frame.data
        asm.size += len(frame.data.encode(errors="surrogatepass"))
        if asm.size > self._max_bytes:
            raise PayloadTooLarge(f"chunked message exceeds {self._max_bytes} bytes")
        if len(asm.parts) < asm.total:
            return None
        self.refuse(frame.of)  # done: trailing resent frames are not a new message
        return _join_surrogates("".join(asm.parts[i] for i in range(1, asm.total + 1)))


def _join_surrogates(text: str) -> str:
    """Rejoin surrogate pairs that a client split between two frames (JavaScript strings
    are UTF-16: slicing one can cut an emoji in half). Lone ones stay and are refused
    when the message is decoded."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
    return text


def receive(reassembler: Reassembler, payload: str | bytes) -> str | bytes | None:
    """A receiver's step: a whole message passes through; a chunk frame goes into the
    reassembler, and the joined message text comes out with its last frame."""
    obj = json.loads(payload)
    if not isinstance(obj, dict) or obj.get("type") != "chunk":
        return payload
    return reassembler.feed(ChunkFrame.model_validate(obj))
