"""The tools of a support bot (BOT_TOOLS_MODULE=support_tools): what an app team writes."""

from __future__ import annotations

import json

from livekit.agents import ToolError, function_tool

ORDERS = {"A-1042": "shipped", "B-7": "preparing"}


@function_tool
async def lookup_order(order_id: str) -> str:
    """Look up the status of an order by its number, e.g. A-1042.

    Args:
        order_id: The order number.
    """
    status = ORDERS.get(order_id.strip().upper())
    if status is None:
        raise ToolError(f"no order {order_id!r}")
    return json.dumps({"order_id": order_id, "status": status})
