"""LiveKit's own chat UIs, served as they are: `lk.chat` in, `lk.transcription` out.

What `@livekit/components-react` (`useChat`, `useSessionMessages`, `useAgent`, the
agent starter apps) sends and expects, read from `livekit/components-js`:

- a user's message is a text stream on `lk.chat`, addressed to the room, plus a legacy
  JSON packet `{id, timestamp, message, ignoreLegacy}` on `lk-chat-topic` whose `id` is
  the stream's id (`ignoreLegacy` is true when the server has text streams);
- the agent's reply is a text stream on `lk.transcription` from the agent's identity;
  streams with one `lk.segment_id` make one bubble, `lk.transcription_final` marks the
  last (`"false"` while streaming, `"true"` at the end);
- `useAgent` waits for the agent's `lk.agent.state` to be `listening`, `thinking` or
  `speaking`.

Here such a message becomes a `chat.message` of the JSON protocol from its sender, with
the id `lkchat-<stream id>` (so the legacy copy is a duplicate, never a second turn):
the same conversation, history, queue, rate limits and tools. The turn's events are
rendered, as they are sent, into one `lk.transcription` stream addressed to the sender
only (`destination_identities`); an `error` becomes readable text. The JSON messages are
sent as well (a client of our protocol in the same conversation sees everything).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import Settings
from ..core.ratelimit import TokenBucket
from ..protocol.errors import BotError, Busy, RateLimited

log = logging.getLogger(__name__)

CHAT_TOPIC = "lk.chat"
LEGACY_TOPIC = "lk-chat-topic"
TRANSCRIPTION_TOPIC = "lk.transcription"
SEGMENT_ID = "lk.segment_id"
FINAL = "lk.transcription_final"
AGENT_STATE = "lk.agent.state"
ID_PREFIX = "lkchat-"
_MARK = f'"reply_to":"{ID_PREFIX}'


def rendered(payload: str) -> bool:
    """Whether a message to a participant answers a LiveKit chat message (and so is
    rendered for their UI by `TranscriptionMirror.sent`)."""
    return _MARK in payload


def request_id(stream_id: str) -> str:
    """The chat.message id of a LiveKit chat message (ids are at most 64 characters)."""
    rid = ID_PREFIX + stream_id
    if len(rid) <= 64:
        return rid
    return ID_PREFIX + hashlib.sha256(stream_id.encode()).hexdigest()[:48]


def chat_message(text: str, stream_id: str) -> bytes:
    """The JSON protocol's chat.message for a LiveKit chat message."""
    body = {"v": 1, "type": "chat.message", "id": request_id(stream_id), "text": text}
    return json.dumps(body).encode()


def legacy_message(data: bytes) -> tuple[str, str] | None:
    """(id, text) of a legacy `lk-chat-topic` packet to answer, or None: unreadable, or
    `ignoreLegacy` (the same message also came as an `lk.chat` text stream)."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or body.get("ignoreLegacy"):
        return None
    msg_id, text = body.get("id"), body.get("message")
    if not isinstance(msg_id, str) or not msg_id or not isinstance(text, str):
        return None
    return msg_id, text


@dataclass(frozen=True)
class StreamLimits:
    """What one sender's `lk.chat` text streams may take (docs/security.md).

    `max_bytes`: decompressed UTF-8 bytes of one message (past it the stream is
    dropped and the sender answered payload_too_large; the SDK's own cap in the room
    options, `stream_payload_cap`, stops a stream that travels compressed before it
    reaches Python). `max_open`: streams of one sender read at once. `deadline_s`:
    a stream must end within it. Each stream is charged to the sender's rate limit
    when it opens (`burst`, `per_second`), not when it completes."""

    max_bytes: int = 8000 * 4
    max_open: int = 2
    deadline_s: float = 30.0
    burst: int = 20
    per_second: float = 5.0


def stream_limits(settings: Settings) -> StreamLimits:
    """A message's text is at most max_text_chars characters: 4 bytes each at most."""
    return StreamLimits(
        max_bytes=settings.max_text_chars * 4,
        burst=settings.rate_burst,
        per_second=settings.rate_per_second,
    )


def stream_payload_cap(limits: StreamLimits) -> int:
    """The SDK's cap on one incoming data stream (the bot's room options): a little
    above ours, so that Python answers first when it can."""
    return limits.max_bytes + 4096


class StreamTooLarge(Exception):
    pass


class StreamGate:
    """Admits a sender's stream when it opens: its rate and how many it has open."""

    def __init__(self, limits: StreamLimits) -> None:
        self.limits = limits
        self._open: dict[str, int] = {}
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def admit(self, identity: str, stream_id: str) -> BotError | None:
        """None, or the error to answer instead of reading the stream."""
        rid = request_id(stream_id)
        bucket = self._buckets.pop(identity, None) or TokenBucket(
            burst=self.limits.burst, per_second=self.limits.per_second
        )
        self._buckets[identity] = bucket
        while len(self._buckets) > 4096:
            self._buckets.popitem(last=False)
        wait_ms = bucket.take()
        if wait_ms:
            return RateLimited("too many messages; slow down", reply_to=rid, retry_after_ms=wait_ms)
        if self._open.get(identity, 0) >= self.limits.max_open:
            return Busy(
                f"at most {self.limits.max_open} messages of yours may be streaming at once",
                reply_to=rid,
                retry_after_ms=1000,
            )
        self._open[identity] = self._open.get(identity, 0) + 1
        return None

    def done(self, identity: str) -> None:
        left = self._open.get(identity, 0) - 1
        if left > 0:
            self._open[identity] = left
        else:
            self._open.pop(identity, None)

    def open_streams(self, identity: str) -> int:
        return self._open.get(identity, 0)


async def read_capped(chunks: AsyncIterator[str], max_bytes: int) -> str:
    """The whole text, or StreamTooLarge as soon as it passes `max_bytes` (UTF-8)."""
    parts: list[str] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk.encode(errors="surrogatepass"))
        if size > max_bytes:
            raise StreamTooLarge(f"the message is over {max_bytes} bytes")
        parts.append(chunk)
    return "".join(parts)


class TextWriter(Protocol):
    async def write(self, text: str) -> None: ...
    async def aclose(self, *, attributes: dict[str, str] | None = None) -> None: ...


# (identity, attributes) -> an open lk.transcription stream to that one participant
OpenStream = Callable[[str, dict[str, str]], Awaitable[TextWriter]]


class TranscriptionMirror:
    """Renders the turns of LiveKit-chat messages as `lk.transcription` streams, and
    keeps the room's `lk.agent.state` (one value for the room: `speaking` while any
    reply is being written, `thinking` while any turn runs, `listening` otherwise)."""

    def __init__(self, open_stream: OpenStream, set_state: Callable[[str], None]) -> None:
        self._open = open_stream
        self._set_state = set_state
        self._writers: dict[tuple[str, str], TextWriter] = {}  # (identity, turn) -> open
        self._rendered: OrderedDict[str, None] = OrderedDict()  # message ids (replays)
        self._running: set[tuple[str, str]] = set()
        self._writing: set[tuple[str, str]] = set()
        self.state = "listening"

    async def sent(self, identity: str, payload: str) -> None:
        """Called with every message sent to `identity` (after it went out). Only the
        turns of LiveKit chat users move `lk.agent.state`: their UIs show it, while our
        protocol's clients have their own `turn.status`, privately (a room-wide state
        that followed every user's turns would tell everyone when anyone chats, and cost
        an attribute update broadcast to the whole room three times per turn)."""
        if _MARK not in payload:
            return
        try:
            msg: dict[str, Any] = json.loads(payload)
        except ValueError:
            return
        self._track_state(identity, msg)
        reply_to = msg.get("reply_to")
        if not isinstance(reply_to, str) or not reply_to.startswith(ID_PREFIX):
            return
        msg_id = str(msg.get("id", ""))
        if msg_id in self._rendered:
            return  # a replay (resume) of what was rendered already
        self._rendered[msg_id] = None
        if len(self._rendered) > 4096:
            self._rendered.popitem(last=False)
        try:
            await self._render(identity, msg)
        except Exception as e:  # the JSON message went out; the mirror is best effort
            log.warning("could not render a reply for LiveKit chat: %s", e)

    def _track_state(self, identity: str, msg: dict[str, Any]) -> None:
        key = (identity, str(msg.get("turn", "")))
        kind = msg.get("type")
        if kind == "turn.start":
            self._running.add(key)
        elif kind == "turn.delta":
            self._writing.add(key)
        elif kind == "turn.end":
            self._running.discard(key)
            self._writing.discard(key)
        else:
            return
        self._show_state()

    async def left(self, identity: str) -> None:
        """`identity` left: its turns end without a `turn.end` reaching here (nothing is
        published to someone gone), so what is kept for them goes now, and the room's
        state no longer counts their turns."""
        self._running = {k for k in self._running if k[0] != identity}
        self._writing = {k for k in self._writing if k[0] != identity}
        for key in [k for k in self._writers if k[0] == identity]:
            writer = self._writers.pop(key)
            with contextlib.suppress(Exception):
                await writer.aclose()
        self._show_state()

    def _show_state(self) -> None:
        state = "speaking" if self._writing else "thinking" if self._running else "listening"
        if state != self.state:
            self.state = state
            self._set_state(state)

    async def _writer(self, identity: str, turn: str) -> TextWriter:
        writer = self._writers.get((identity, turn))
        if writer is None:
            attributes = {SEGMENT_ID: turn, FINAL: "false"}
            writer = self._writers[(identity, turn)] = await self._open(identity, attributes)
        return writer

    async def _render(self, identity: str, msg: dict[str, Any]) -> None:
        kind, turn = msg.get("type"), str(msg.get("turn") or msg.get("reply_to"))
        if kind == "turn.delta" and msg.get("text"):
            await (await self._writer(identity, turn)).write(str(msg["text"]))
        elif kind == "turn.end":
            error = msg.get("error") or {}
            if msg.get("status") == "failed":
                text = error.get("message") or "the reply failed"
                await (await self._writer(identity, turn)).write(f"\n[error: {text}]")
            writer = self._writers.pop((identity, turn), None)
            if writer is not None:
                await writer.aclose(attributes={SEGMENT_ID: turn, FINAL: "true"})
        elif kind == "error":  # refused before any turn: busy, rate_limited, too large
            writer = await self._open(identity, {SEGMENT_ID: str(msg.get("id")), FINAL: "true"})
            await writer.write(f"[error: {msg.get('message', msg.get('code', 'error'))}]")
            await writer.aclose()

    async def aclose(self) -> None:
        for writer in self._writers.values():
            with contextlib.suppress(Exception):
                await writer.aclose()
        self._writers.clear()
