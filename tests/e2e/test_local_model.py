"""A chat turn answered by the offline local model, over a real livekit-server."""

from __future__ import annotations

import pytest

from bot.dev.livekit_server import DevServer
from bot.protocol.outbound import TurnEnd

from .conftest import Connect
from .procs import start_worker

pytestmark = pytest.mark.local_model


async def test_local_model_answers_with_no_keys(lk: DevServer, connect: Connect, room: str) -> None:
    # no OPENAI_* at all: the worker starts the local model server itself
    worker = start_worker(lk, None, agent_name="local-bot", llm_timeout="60")
    try:
        client = await connect("lou", room, agent_name="local-bot", dispatch_name="local-bot")
        assert client.ready is not None and client.ready.tools == []  # the model has no tools
        result = await client.chat("Say hello in one short sentence.", timeout=120)
        end = result.end
        assert isinstance(end, TurnEnd) and end.status == "completed", end
        deltas = "".join(e.text for e in result.events if e.type == "turn.delta")  # type: ignore[union-attr]
        assert result.reply and result.reply.strip() and deltas == result.reply
        log = worker.text()
        assert "local model SmolLM2-135M" in log and "tools are off" in log
    finally:
        worker.stop()
