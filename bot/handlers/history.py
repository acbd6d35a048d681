from __future__ import annotations

from ..core.context import Context
from ..protocol.inbound import HistoryGet, HistoryReset
from ..protocol.outbound import Ack, HistoryPage


async def handle_get(msg: HistoryGet, ctx: Context) -> None:
    items, more = ctx.conversation.history.page(
        limit=msg.limit, before=msg.before, max_bytes=ctx.settings.history_page_bytes
    )
    ctx.reply(HistoryPage(items=items, more=more))


async def handle_reset(msg: HistoryReset, ctx: Context) -> None:
    conv = ctx.conversation
    conv.history.clear()
    conv.ids.forget_texts()  # before the window, which also tells the store (one batch)
    conv.outbox.forget()
    ctx.reply(Ack(status="reset"))
