"""v1.1: results of tools a client ran, and answers to approval requests."""

from __future__ import annotations

from ..core.context import Context
from ..protocol.inbound import ToolApprove, ToolResult
from ..protocol.outbound import Ack
from ..turns.client_tools import Outcome


async def handle_result(msg: ToolResult, ctx: Context) -> None:
    outcome = Outcome(output=msg.output, error=msg.error.message if msg.error else None)
    status = ctx.conversation.client_tools.settle(msg.call_id, outcome)
    ctx.reply(Ack(status=status))


async def handle_approve(msg: ToolApprove, ctx: Context) -> None:
    """No tool of this bot waits for an approval yet: there is nothing to settle."""
    ctx.reply(Ack(status="noop"))
