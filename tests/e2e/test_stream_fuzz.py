"""Hostile data streams over a real livekit-server: text and byte streams on `lk.chat`
and on other topics, empty, over the text limit, over the stream cap, with any
attributes. For every example, from a participant of its own in one shared room:

- each `lk.chat` text stream is answered exactly once (the reply, or the protocol's
  error as text), and nothing else is (byte streams and other topics get nothing);
- the sender is still served afterwards, and the worker is still up.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.dev.livekit_server import DevServer

from .procs import Proc
from .test_lk_chat import BOUND, StockUser

ROOM = f"fuzz-streams-{uuid.uuid4().hex[:8]}"
_who = itertools.count(1)


@dataclass(frozen=True)
class Send:
    kind: str  # "text" or "bytes"
    topic: str
    body: str
    attributes: tuple[tuple[str, str], ...]


plain = st.characters(blacklist_categories=("Cs",))  # what a str can carry as UTF-8
bodies = st.one_of(
    st.text(plain, max_size=40),
    st.just(""),
    st.just("x" * 9000),  # over max_text_chars, under the stream cap: payload_too_large
    st.just("é" * 40000),  # 80 kB: over the stream cap (ours, or the SDK's)
    st.text(plain, min_size=1, max_size=8).map(lambda s: s * 500),
)
sends = st.builds(
    Send,
    kind=st.sampled_from(["text", "text", "bytes"]),
    topic=st.sampled_from(["lk.chat", "lk.chat", "lkbot", "lk.transcription", "other"]),
    body=bodies,
    attributes=st.lists(
        st.tuples(st.text(plain, max_size=8), st.text(plain, max_size=16)), max_size=2
    ).map(tuple),
)


async def _example(lk: DevServer, batch: list[Send]) -> None:
    user = StockUser()
    await user.join(lk, ROOM, f"fuzz-{next(_who)}")
    try:
        await user.until(lambda: user.agent_state() is not None)
        lp = user.room.local_participant
        for s in batch:
            attributes = dict(s.attributes)
            if s.kind == "text":
                await lp.send_text(s.body, topic=s.topic, attributes=attributes)
            else:
                writer = await lp.stream_bytes("blob", topic=s.topic, attributes=attributes)
                await writer.write(s.body.encode())
                await writer.aclose()
        answered = sum(1 for s in batch if s.kind == "text" and s.topic == "lk.chat")
        await user.until(lambda: len(user.finished()) >= answered)
        # still served (every stream above was read and answered: none is open, and a
        # participant of its own has its whole rate)
        marker = f"marker {uuid.uuid4().hex[:6]}"
        await user.send(marker)
        await user.until(lambda: len(user.finished()) > answered)
        texts = [s.text for s in user.finished()]
        assert texts[-1] == f"You said: {marker}", texts
        assert len(user.finished()) == answered + 1, texts  # nothing answered twice
    finally:
        await user.room.disconnect()


@pytest.mark.timeout(900)
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example is real processes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(sends, min_size=1, max_size=4))
def test_any_streams_are_answered_once_each_and_the_sender_is_served(
    lk: DevServer, worker: Proc, batch: list[Send]
) -> None:
    asyncio.run(asyncio.wait_for(_example(lk, batch), BOUND * 3))
    assert worker.process.poll() is None, worker.text()[-3000:]
