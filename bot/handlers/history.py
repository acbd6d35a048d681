from __future__ import annotations

from ..context import Context
from ..protocol.client import HistoryGet, HistoryReset
from ..protocol.server import Ack, HistoryPage


async def handle_get(msg: HistoryGet, ctx: Context) -> None:
    items, more = ctx.session.history.page(limit=msg.limit, before=msg.before)
    ctx.reply(HistoryPage(items=items, more=more))


async def handle_reset(msg: HistoryReset, ctx: Context) -> None:
    ctx.session.history.clear()
    ctx.reply(Ack(status="reset"))
