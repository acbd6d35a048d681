"""Per-participant grants over a real livekit-server: two participants in one room,
their tokens carrying different `lkbot.grants` claims the app's backend signed, see
different `session.ready.tools`; a model scripted to call a tool that is not granted
gets it refused without the tool running."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import jwt
import pytest

from bot.client.bot_client import BotClient
from bot.dev import livekit_server
from bot.llm.tools.grants import GRANTS_ATTRIBUTE
from bot.protocol.outbound import TurnToolResult
from bot.room.tokens import mint_token

from ..harness import script
from .conftest import settings_for
from .procs import own_stack

SECRET = "the app backend's grants secret, 32+ bytes"
BOUND = 60.0


def grant(identity: str, tools: list[str]) -> str:
    claims = {"sub": identity, "exp": int(time.time()) + 600, "tools": tools}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def granted(llm_url: str) -> Iterator[livekit_server.DevServer]:
    with own_stack(llm_url, granted_tools="echo", grants_secret=SECRET) as lk:
        yield lk


async def test_grants_signed_by_the_backend_decide_each_participants_tools(
    granted: livekit_server.DevServer, clients: list[BotClient]
) -> None:
    lk = granted
    room = f"grants-{uuid.uuid4().hex[:6]}"
    users = {}
    for who, tools in (("ann", ["echo"]), ("bob", [])):
        attributes = {GRANTS_ATTRIBUTE: grant(who, tools)}
        token = mint_token(settings_for(lk), room=room, identity=who, attributes=attributes)
        client = BotClient()
        clients.append(client)
        await client.connect(lk.url, token, agent_timeout=BOUND)
        users[who] = client
    offered = {who: {t.name for t in c.ready.tools} for who, c in users.items() if c.ready}
    assert "echo" in offered["ann"] and "echo" not in offered["bob"]
    assert offered["ann"] - {"echo"} == offered["bob"]

    for who, c in users.items():
        result = await c.chat(script(tool="echo", args={"text": f"ran for {who}"}), BOUND)
        (settled,) = [e for e in result.events if isinstance(e, TurnToolResult)]
        if who == "ann":
            assert (settled.status, settled.output) == ("ok", "ran for ann")
        else:
            assert settled.status == "error" and "not available" in (settled.output or "")
