"""How bench/local_tools.py scores a model's tool calls (the measurement behind keeping
tools off in local mode, docs/tools.md)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.local_tools import CASES, Case, verdict


def call(name: str, arguments: str) -> dict[str, Any]:
    return {"function": {"name": name, "arguments": arguments}}


@pytest.mark.parametrize(
    ("case", "calls", "ok"),
    [
        (
            Case("17*23?", "calculate", "391"),
            [call("calculate", '{"expression": "17 * 23"}')],
            True,
        ),
        (
            Case("17*23?", "calculate", "391"),
            [call("calculate", '{"expression": "17 + 23"}')],
            False,
        ),
        (Case("17*23?", "calculate", "391"), [call("calculate", '{"expression": ", (17')], False),
        (Case("17*23?", "calculate", "391"), [call("current_time", "{}")], False),
        (Case("17*23?", "calculate", "391"), [], False),
        (
            Case("Tokyo?", "current_time", "Tokyo"),
            [call("current_time", '{"timezone": "Asia/Tokyo"}')],
            True,
        ),
        (
            Case("Tokyo?", "current_time", "Tokyo"),
            [call("current_time", '{"timezone": "UTC"}')],
            False,
        ),
        (Case("who?", "participants"), [call("participants", "{ }")], True),
        (Case("hi", None), [], True),
        (Case("hi", None), [call("participants", "{}")], False),
        (
            Case("who?", "participants"),
            [call("participants", "{}"), call("participants", "{}")],
            False,
        ),
    ],
)
def test_a_call_passes_only_when_it_does_the_job(
    case: Case, calls: list[dict[str, Any]], ok: bool
) -> None:
    assert verdict(case, calls)[0] is ok


def test_the_prompt_set_covers_every_builtin_tool_and_no_tool() -> None:
    assert {c.tool for c in CASES} == {"calculate", "current_time", "participants", None}
