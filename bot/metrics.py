"""What operators watch: Prometheus metrics of one worker process (`GET /metrics`).

Every bot message passes through an `Outbox`; `observe_sent` counts from there, so one
place sees every turn and every error of every conversation without parsing anything
(the messages are still models). Rooms, conversations and queue depth are read when
scraped (`read_rooms_from`). The store's write time is observed by the journal. All of it
lives in this process: each worker process serves its own `/metrics` (one process per
worker is the default; scrape each).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .protocol.outbound import BotEnvelope, Error, TurnDelta, TurnEnd, TurnStart

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

TURNS = Counter("lkbot_turns", "Turns ended, by status", ["status"], registry=REGISTRY)
ERRORS = Counter(
    "lkbot_errors", "error messages and failed turns, by code", ["code"], registry=REGISTRY
)
MESSAGES = Counter("lkbot_messages_sent", "Bot messages sent, by type", ["type"], registry=REGISTRY)
FIRST_TEXT = Histogram(
    "lkbot_first_text_seconds",
    "turn.start to the first turn.delta",
    buckets=_LATENCY,
    registry=REGISTRY,
)
TURN_TIME = Histogram(
    "lkbot_turn_seconds", "turn.start to turn.end", buckets=_LATENCY, registry=REGISTRY
)
TOKENS = Counter("lkbot_llm_tokens", "LLM tokens, by kind", ["kind"], registry=REGISTRY)
STORE_WRITE = Histogram(
    "lkbot_store_write_seconds",
    "One batch written to the conversation store",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
    registry=REGISTRY,
)
STORE_FAILURES = Counter(
    "lkbot_store_write_failures", "Store batches dropped after retries", registry=REGISTRY
)
STORE_STALE = Counter(
    "lkbot_store_stale_writes",
    "Conversations this worker stopped serving: another bot claimed them (a write refused)",
    registry=REGISTRY,
)
STORE_UNAVAILABLE = Counter(
    "lkbot_store_unavailable",
    "Packets answered busy because their conversation could not be read from the store",
    registry=REGISTRY,
)

# turn id -> (started, first text seen), for the turns running now
_open: dict[str, tuple[float, bool]] = {}
_OPEN_MAX = 100_000


def observe_sent(msg: BotEnvelope) -> None:
    """Called by every Outbox with every message it sends (sync, cheap)."""
    MESSAGES.labels(getattr(msg, "type", "other")).inc()
    if isinstance(msg, TurnStart):
        _open[msg.turn] = (time.monotonic(), False)
        if len(_open) > _OPEN_MAX:  # a turn whose end was never sent (its room closed)
            del _open[next(iter(_open))]
    elif isinstance(msg, TurnDelta):
        started = _open.get(msg.turn)
        if started is not None and not started[1]:
            FIRST_TEXT.observe(time.monotonic() - started[0])
            _open[msg.turn] = (started[0], True)
    elif isinstance(msg, TurnEnd):
        TURNS.labels(msg.status).inc()
        started = _open.pop(msg.turn, None)
        if started is not None:
            TURN_TIME.observe(time.monotonic() - started[0])
        if msg.error is not None:
            ERRORS.labels(msg.error.code).inc()
        if msg.usage is not None:
            TOKENS.labels("prompt").inc(msg.usage.prompt_tokens)
            TOKENS.labels("completion").inc(msg.usage.completion_tokens)
    elif isinstance(msg, Error):
        ERRORS.labels(msg.code).inc()


def _no_rooms() -> tuple[int, int, int, float]:
    return (0, 0, 0, 0.0)


_rooms: Callable[[], tuple[int, int, int, float]] = _no_rooms
_last: list[float] = [0.0, 0.0, 0.0, 0.0]


def read_rooms_from(read: Callable[[], tuple[int, int, int, float]]) -> None:
    """Where the room gauges come from: (rooms, conversations, queued turns, load)."""
    global _rooms
    _rooms = read


def _gauge(index: int) -> float:
    if index == 0:  # one read per scrape: the gauges are collected in this order
        _last[:] = [float(v) for v in _rooms()]
    return _last[index]


def _reader(index: int) -> Callable[[], float]:
    return lambda: _gauge(index)


for _i, (_name, _doc) in enumerate(
    (
        ("lkbot_rooms", "Rooms this worker runs"),
        ("lkbot_conversations", "Conversations held (senders in those rooms)"),
        ("lkbot_turns_queued", "Turns waiting behind a running one"),
        ("lkbot_load", "The load reported to livekit-server (0 to its target_load)"),
    )
):
    Gauge(_name, _doc, registry=REGISTRY).set_function(_reader(_i))
