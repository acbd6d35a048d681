"""An MCP server's tool called in a turn, end to end: a real MCP server process (the
`mcp` SDK, streamable HTTP), the worker process configured with BOT_MCP_SERVERS, a
real livekit-server and a BotClient."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from bot.client.bot_client import BotClient
from bot.dev import livekit_server
from bot.dev.processes import free_port
from bot.protocol.outbound import TurnToolResult
from bot.room.tokens import mint_token

from ..harness import script
from ..test_mcp import McpProcess
from .conftest import settings_for
from .procs import own_stack

BOUND = 60.0


@pytest.fixture(scope="module")
def with_mcp(llm_url: str) -> Iterator[livekit_server.DevServer]:
    orders = McpProcess(free_port())
    orders.start()
    servers = [{"name": "orders", "url": orders.url, "headers": {"Authorization": "Bearer e2e"}}]
    try:
        with own_stack(llm_url, mcp_servers=json.dumps(servers)) as lk:
            yield lk
    finally:
        orders.stop()


async def test_a_real_mcp_servers_tool_is_called_in_a_turn(
    with_mcp: livekit_server.DevServer, clients: list[BotClient]
) -> None:
    lk = with_mcp
    token = mint_token(settings_for(lk), room=f"mcp-{uuid.uuid4().hex[:6]}", identity="eve")
    eve = BotClient()
    clients.append(eve)
    await eve.connect(lk.url, token, agent_timeout=BOUND)
    assert eve.ready is not None
    assert {t.name: t.source for t in eve.ready.tools}["lookup_order"] == "mcp"
    result = await eve.chat(script(tool="lookup_order", args={"order_id": "Z-9"}), BOUND)
    (settled,) = [e for e in result.events if isinstance(e, TurnToolResult)]
    assert settled.status == "ok"
    assert json.loads(settled.output or "") == {
        "order_id": "Z-9",
        "status": "shipped",
        "auth": "Bearer e2e",  # the headers configured for the server reach it
    }
    assert result.reply is not None and "Z-9" in result.reply
