"""DeltaCoalescer: a step's first text goes out in the pass of the loop it came in
(with all the text that pass brought), later text by interval and size; every
character goes out once, in order (hypothesis)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.turns.coalescer import DeltaCoalescer
from bot.turns.emitter import TurnEmitter


class Deltas:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def delta(self, text: str) -> None:
        self.sent.append(text)


def coalescer(interval: float = 60.0, max_chars: int = 16) -> tuple[DeltaCoalescer, Deltas]:
    out = Deltas()
    return DeltaCoalescer(cast(TurnEmitter, out), interval=interval, max_chars=max_chars), out


async def one_pass() -> None:
    await asyncio.sleep(0)


async def test_the_first_text_of_a_pass_goes_out_together_at_once() -> None:
    c, out = coalescer()
    for piece in ("lo", "rem", " ip"):  # one read of the stream: one pass
        c.push(piece)
    assert out.sent == []  # not before the pass ends...
    await one_pass()
    assert out.sent == ["lorem ip"]  # ...and not a moment (an interval) later
    c.push("sum")  # later text waits for the interval (60 s here) or the size
    await one_pass()
    assert out.sent == ["lorem ip"]
    c.push(" dolor sit amet")  # past the size: all of it, in pieces of at most 16
    assert out.sent == ["lorem ip", "sum dolor sit am", "et"]


async def test_a_new_step_sends_what_is_held_and_its_own_first_text_at_once() -> None:
    c, out = coalescer()
    c.push("a")
    await one_pass()
    c.push("b")  # held for the interval
    c.new_step()  # a tool ran: the next step's text
    assert out.sent == ["a", "b"]
    c.push("c")
    await one_pass()
    assert out.sent == ["a", "b", "c"]


async def test_no_interval_sends_every_piece_at_once() -> None:
    c, out = coalescer(interval=0)
    c.push("a")
    c.push("b")
    assert out.sent == ["a", "b"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.text(min_size=1, max_size=20), max_size=6), max_size=8),
    st.integers(min_value=1, max_value=24),
    st.sampled_from([0.0, 0.001, 60.0]),
    st.lists(st.booleans(), max_size=8),
)
def test_every_character_goes_out_once_in_order_within_the_size(
    passes: list[list[str]], max_chars: int, interval: float, steps: list[bool]
) -> None:
    async def run() -> list[Any]:
        c, out = coalescer(interval, max_chars)
        for i, pieces in enumerate(passes):
            if i < len(steps) and steps[i]:
                c.new_step()
            for piece in pieces:
                c.push(piece)
            await one_pass()
        c.flush()
        return out.sent

    sent = asyncio.run(run())
    assert "".join(sent) == "".join("".join(p) for p in passes)
    assert all(0 < len(d) <= max_chars for d in sent)
