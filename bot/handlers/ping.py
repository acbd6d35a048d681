from __future__ import annotations

from ..core.context import Context
from ..protocol.inbound import Ping
from ..protocol.outbound import Pong


async def handle_ping(msg: Ping, ctx: Context) -> None:
    ctx.reply(Pong())
