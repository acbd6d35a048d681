"""Micro benchmarks (pytest-benchmark): protocol decode/validate, encode, chunking.

Run by `python -m bench` (or alone: `pytest bench/micro.py --benchmark-only`).
"""

from __future__ import annotations

import json
from typing import Any

from bot.protocol.chunking import split
from bot.protocol.codec import decode, encode
from bot.protocol.outbound import TurnDelta, TurnEnd, Usage

CHAT = json.dumps(
    {
        "v": 1,
        "type": "chat.message",
        "id": "m-123456",
        "text": "What is the weather like in Paris today? " * 3,
        "metadata": {"client": "web", "locale": "fr-FR"},
    }
).encode()
PING = json.dumps({"v": 1, "type": "ping", "id": "p1"}).encode()
DELTA = TurnDelta(
    turn="t_0123456789ab",
    reply_to="m-123456",
    text="Paris is sunny, 21°C. ",
    id="b17-abcdef",
    seq=17,
    ts=1_700_000_000_000,
)
END = TurnEnd(
    turn="t_0123456789ab",
    reply_to="m-123456",
    status="completed",
    usage=Usage(prompt_tokens=120, completion_tokens=40, total_tokens=160),
    id="b18-abcdef",
    seq=18,
    ts=1_700_000_000_000,
)
REPLY_100K = json.dumps({"v": 1, "type": "turn.reply", "text": "lorem ipsum é 中 " * 6250})


def test_decode_chat_message(benchmark: Any) -> None:
    benchmark(decode, CHAT, max_bytes=15000)


def test_decode_ping(benchmark: Any) -> None:
    benchmark(decode, PING, max_bytes=15000)


def test_encode_turn_delta(benchmark: Any) -> None:
    benchmark(encode, DELTA)


def test_encode_turn_end(benchmark: Any) -> None:
    benchmark(encode, END)


def test_chunk_100kb_reply(benchmark: Any) -> None:
    frames = benchmark(split, REPLY_100K, of="b19-abcdef", max_packet=15000)
    assert "".join(json.loads(f)["data"] for f in frames) == REPLY_100K
