from __future__ import annotations

from ..context import Context
from ..errors import ResumeGap
from ..protocol.client import SessionHello
from ..protocol.server import Limits, SessionReady

PROTOCOL = "1.0"
FEATURES = ["streaming", "tools", "cancel", "history", "chunking", "on_busy", "idempotency"]


async def handle_hello(msg: SessionHello, ctx: Context) -> None:
    sent = ctx.session.outbox.last_seq
    if msg.resume is not None and msg.resume.last_seq < sent:
        # Replaying buffered messages is not implemented yet: say what was lost.
        raise ResumeGap(
            f"cannot replay messages {msg.resume.last_seq + 1}..{sent}; "
            "start over (history.get returns the conversation so far)"
        )
    s = ctx.settings
    ctx.reply(
        SessionReady(
            protocol=PROTOCOL,
            features=FEATURES,
            limits=Limits(
                max_packet=s.max_packet,
                max_text_chars=s.max_text_chars,
                max_message_bytes=s.max_message_bytes,
                max_queue=s.max_queue,
                rate_burst=s.rate_burst,
                rate_per_second=s.rate_per_second,
                history_max_items=s.history_max_items,
            ),
            tools=ctx.services.engine.tool_infos(),
        )
    )
