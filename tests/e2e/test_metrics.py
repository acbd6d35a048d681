"""The worker's `/metrics`: a scrape before and after some chat shows the numbers move."""

from __future__ import annotations

import re

import aiohttp

from ..harness import script
from .conftest import Connect
from .procs import Proc


async def scrape(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def test_metrics_move_with_rooms_turns_and_errors(
    worker: Proc, connect: Connect, room: str
) -> None:
    found = re.search(r"HTTP on port (\d+)", worker.text())
    assert found, "the worker logs its HTTP port"
    port = int(found.group(1))
    before = await scrape(port)

    alice = await connect("alice", room)
    assert (await alice.chat("count me")).reply == "You said: count me"
    end = await alice.chat(script(status=500))  # a failed turn, with its error code
    assert end.end is not None and end.end.status == "failed"
    after = await scrape(port)

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert grew('lkbot_turns_total{status="completed"}') >= 1
    assert grew('lkbot_turns_total{status="failed"}') >= 1
    assert grew('lkbot_errors_total{code="llm_unavailable"}') >= 1
    assert grew("lkbot_first_text_seconds_count") >= 1
    assert grew("lkbot_turn_seconds_count") >= 2
    assert grew('lkbot_messages_sent_total{type="session.ready"}') >= 1
    assert grew("lkbot_store_write_seconds_count") >= 1
    assert after["lkbot_rooms"] >= 1 and after["lkbot_conversations"] >= 1
    assert 0 < after["lkbot_load"] <= 0.7
