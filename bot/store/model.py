"""What a conversation's durable state is, and one batch of changes to it.

Everything here is plain data with a JSON form, so that every backend stores the same
bytes and the contract tests can compare them."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, unquote

FORGET_MS = 3_600_000  # a worker lease expired this long ago is forgotten


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class ConversationKey:
    """Whose conversation: a sender in a room, or (scope `identity`) a sender in any
    room (`room` is then ""). LiveKit authenticates identities with the token, so a
    key can only be reached by the participant it names."""

    room: str
    identity: str

    def encoded(self) -> str:
        return f"{quote(self.room, safe='')}/{quote(self.identity, safe='')}"

    @classmethod
    def decode(cls, text: str) -> ConversationKey:
        room, _, identity = text.partition("/")
        return cls(unquote(room), unquote(identity))

    def __str__(self) -> str:
        return self.encoded()


@dataclass(frozen=True)
class SentRecord:
    """One bot message as sent (its JSON), for resume."""

    seq: int
    id: str
    topic: str
    text: str


@dataclass(frozen=True)
class SeenId:
    """One remembered client message id (idempotency)."""

    id: str
    print: str
    turn: str | None


@dataclass(frozen=True)
class Lease:
    """A turn that is running, recorded by the writer that runs it: a writer that claims
    the conversation and finds one knows its writer can no longer write. `suspended`:
    the turn waits for a person (a `tool.approval_request`), and this is what continues
    it (`turns/suspension.py`); the claiming writer continues it instead of ending it."""

    turn: str
    request_id: str
    topic: str
    owner: str
    until_ms: int
    suspended: dict[str, Any] | None = None


class Stale(Exception):
    """A write refused: another writer claimed the conversation after this one (its
    fencing token is no longer the conversation's). The writer must stop serving it."""


@dataclass
class ConversationState:
    seq: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    sent: list[SentRecord] = field(default_factory=list)
    ids: list[SeenId] = field(default_factory=list)
    leases: list[Lease] = field(default_factory=list)
    updated_ms: int = 0

    @property
    def empty(self) -> bool:
        return not (self.seq or self.history or self.sent or self.ids or self.leases)


@dataclass(frozen=True)
class Claim:
    """A conversation claimed by one writer: `fence` is its fencing token (every write
    of that writer carries it; a later claim makes it stale), `state` what the store
    held at the moment of the claim."""

    fence: int
    state: ConversationState


@dataclass
class Changes:
    """One batch of writes for one conversation, applied atomically, in this order:
    history cleared, then appended; sent and ids appended; leases set, then ended.

    `fence`: the writer's fencing token (from `Store.claim`); the store applies the
    batch only while that claim is the conversation's latest, else raises `Stale`.
    None only for an operator's own writes (tests, tooling), never a bot's."""

    fence: int | None = None
    seq: int | None = None
    history_cleared: bool = False
    # history.reset: the resume window is emptied and the remembered ids keep no print
    # of their message (a guessed text could be confirmed with it), before `sent` and
    # `ids` are appended
    sent_cleared: bool = False
    ids_forgotten: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    sent: list[SentRecord] = field(default_factory=list)
    ids: list[SeenId] = field(default_factory=list)
    leases: dict[str, Lease] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(
            self.seq is not None
            or self.history_cleared
            or self.sent_cleared
            or self.ids_forgotten
            or self.history
            or self.sent
            or self.ids
            or self.leases
            or self.ended
        )


@dataclass(frozen=True)
class Bounds:
    """How much of a conversation a store keeps, and for how long."""

    history_max: int = 200
    sent_max: int = 256
    sent_max_bytes: int = 1 << 20  # UTF-8 bytes of the kept messages' JSON
    ids_max: int = 512
    ttl_s: float = 0.0  # 0: keep until deleted
    # over this many conversations, the least recently claimed are deleted (0: no cap)
    max_conversations: int = 0


DEFAULT_BOUNDS = Bounds()


def sent_size(record: SentRecord) -> int:
    return len(record.text.encode())


def trim_sent(sent: list[SentRecord], bounds: Bounds) -> list[SentRecord]:
    """The newest records within both bounds (every backend keeps exactly these)."""
    kept: list[SentRecord] = []
    total = 0
    for record in reversed(sent[-bounds.sent_max :]):
        total += sent_size(record)
        if total > bounds.sent_max_bytes:
            break
        kept.append(record)
    kept.reverse()
    return kept


def forgotten(seen: SeenId) -> SeenId:
    return SeenId(seen.id, "", seen.turn)


def dumps(value: Any) -> str:
    if hasattr(value, "__dataclass_fields__"):
        value = asdict(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sent_from(text: str) -> SentRecord:
    return SentRecord(**json.loads(text))


def seen_from(text: str) -> SeenId:
    return SeenId(**json.loads(text))


def lease_from(text: str) -> Lease:
    return Lease(**json.loads(text))
