from __future__ import annotations

from ..context import Context
from ..protocol.client import Ping
from ..protocol.server import Pong


async def handle_ping(msg: Ping, ctx: Context) -> None:
    ctx.reply(Pong())
