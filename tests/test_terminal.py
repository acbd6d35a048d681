"""The terminal client's printer: typing from turn.start, text on stdout, the rest on
stderr."""

from __future__ import annotations

import io

from bot.client.terminal import Printer
from bot.protocol.outbound import BotMessage, TurnDelta, TurnEnd, TurnStart, TurnStatus


def _events(*statuses: str) -> list[BotMessage]:
    common = {"turn": "t1", "ts": 1, "reply_to": "m1"}
    n = iter(range(1, 100))
    msgs: list[BotMessage] = [TurnStart(id="b1", seq=next(n), **common)]  # type: ignore[arg-type]
    for state in statuses:
        msgs.append(TurnStatus(id=f"s{state}", seq=next(n), state=state, **common))  # type: ignore[arg-type]
    msgs.append(TurnDelta(id="d", seq=next(n), text="hi", **common))  # type: ignore[arg-type]
    msgs.append(TurnEnd(id="e", seq=next(n), status="completed", **common))  # type: ignore[arg-type]
    return msgs


def test_typing_shows_from_turn_start_once_whether_or_not_thinking_comes() -> None:
    # the bot sends `thinking` only when the model is slow: both turns look the same
    for statuses in [(), ("thinking",)]:
        out, err = io.StringIO(), io.StringIO()
        printer = Printer(out, err)
        for msg in _events(*statuses):
            printer(msg)
        assert err.getvalue() == "… "
        assert out.getvalue() == "hi\n"
