"""A real MCP server for the tests and docs (the `mcp` SDK's MCPServer, streamable
HTTP): `python -m bot.testing.mcp_server --port 9000` serves http://127.0.0.1:9000/mcp.

Tools: `lookup_order(order_id)` (an order's status, the caller's Authorization header
when one was sent, and on whose behalf the call was made when the bot forwards grants:
the `_meta` it sent), `fail()` (always raises), `count_calls()` (how many calls this
process has served)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("lkbot-test-orders")
CALLS = {"n": 0}


@server.tool()
def lookup_order(order_id: str, ctx: Context) -> str:
    """Look up the status of an order by its number, e.g. A-1042."""
    CALLS["n"] += 1
    request = getattr(ctx.request_context, "request", None)
    auth = request.headers.get("authorization") if request is not None else None
    answer = {"order_id": order_id, "status": "shipped", "auth": auth}
    meta: dict[str, Any] = dict(ctx.request_context.meta or {})
    if "io.lkbot/grants" in meta:  # a real server verifies this JWT with the app's secret
        answer["for"] = meta.get("io.lkbot/identity")
        answer["grants"] = meta["io.lkbot/grants"]
    return json.dumps(answer)


@server.tool()
def fail() -> str:
    """A tool that always fails."""
    CALLS["n"] += 1
    raise RuntimeError("the order database is down")


@server.tool()
def count_calls() -> int:
    """How many tool calls this server process has served."""
    return CALLS["n"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    print(f"MCP server on http://127.0.0.1:{args.port}/mcp", flush=True)
    server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
