"""v1.1: results of tools a client ran, and answers to approval requests."""

from __future__ import annotations

from ..core.context import Context
from ..protocol.inbound import ToolApprove, ToolResult
from ..protocol.outbound import Ack
from ..turns.client_tools import Outcome
from ..turns.engine import Decision


async def handle_result(msg: ToolResult, ctx: Context) -> None:
    outcome = Outcome(output=msg.output, error=msg.error.message if msg.error else None)
    status = ctx.conversation.client_tools.settle(msg.call_id, outcome)
    ctx.reply(Ack(status=status))


async def handle_approve(msg: ToolApprove, ctx: Context) -> None:
    decision = Decision(approved=msg.approved, reason=msg.reason)
    ctx.reply(Ack(status=ctx.conversation.approvals.settle(msg.call_id, decision)))
