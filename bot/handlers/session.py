from __future__ import annotations

from ..core.context import Context
from ..protocol.errors import ResumeGap
from ..protocol.inbound import SessionHello
from ..protocol.outbound import Limits, SessionReady, ToolInfo
from ..protocol.version import PROTOCOL_LABEL

FEATURES = [
    "streaming",
    "tools",
    "cancel",
    "history",
    "chunking",
    "on_busy",
    "idempotency",
    "resume",
    "client_tools",
    "approval",
]


def features(tools: list[ToolInfo]) -> list[str]:
    """What this bot offers: `tools` only when the model has any to call."""
    return [f for f in FEATURES if f != "tools" or tools]


async def handle_hello(msg: SessionHello, ctx: Context) -> None:
    outbox = ctx.conversation.outbox
    if msg.resume is not None and msg.resume.last_seq > outbox.last_seq:
        # the client has seen more than this conversation ever sent: it was lost
        # (BOT_STORE=memory and a worker restart, a purge, a TTL)
        raise ResumeGap(
            f"this conversation has sent only up to seq {outbox.last_seq}: the bot no "
            "longer has the one you resume; start over without resume"
        )
    if msg.resume is not None and not outbox.replay(msg.resume.last_seq):
        gone_to = outbox.first_kept - 1
        raise ResumeGap(
            f"messages {msg.resume.last_seq + 1}..{gone_to} are no longer kept "
            f"(the bot keeps the last {ctx.settings.resume_window}); "
            "history.get returns the conversation so far"
        )
    s = ctx.settings
    client = ctx.conversation.client_tools
    if msg.tools is not None:
        client.declare(msg.tools, taken=ctx.services.engine.tool_names)
    allowed = ctx.services.allowed_tools(ctx.conversation.identity)
    tools = ctx.services.engine.tool_infos(allowed) + client.infos(s.needs_approval)
    ctx.reply(
        SessionReady(
            protocol=PROTOCOL_LABEL,
            features=features(tools),
            limits=Limits(
                max_packet=s.max_packet,
                max_text_chars=s.max_text_chars,
                max_message_bytes=s.max_message_bytes,
                max_queue=s.max_queue,
                rate_burst=s.rate_burst,
                rate_per_second=s.rate_per_second,
                history_max_items=s.history_max_items,
                tool_result_timeout_ms=round(s.client_tool_timeout * 1000),
                max_client_tools=s.max_client_tools,
                max_tool_schema_bytes=s.max_tool_schema_bytes,
                max_tool_result_bytes=s.max_tool_result_bytes,
            ),
            tools=tools,
        )
    )
    if msg.resume is None:  # a client starting over holds no request it must answer
        ctx.conversation.approvals.ask_again()
