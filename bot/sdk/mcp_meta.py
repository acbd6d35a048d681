"""Per-call `_meta` on MCP tool calls made through livekit-agents' MCP client.

An MCP session is one per server per process (every room's turns share it), so an HTTP
header cannot say on whose behalf one call is made; the MCP request's own `_meta` can.
livekit-agents' `MCPServer` sends every call through its `_call_tool(name, arguments,
progress_callback=)` without `_meta`: `forwarding(cls)` is a subclass of one of its
server classes that adds `CALL_META` (set by the caller around a call) as the request's
`_meta`. Used only by the sessions of servers configured with `forward_grants`; a
subclass, not a patch, so nothing else in the process changes. On an SDK without that
method (or an `mcp` whose `call_tool` takes no `meta`) it returns None: the caller then
uses the stock class and forwards nothing (logged).
"""

from __future__ import annotations

import inspect
from contextvars import ContextVar
from typing import Any, cast

CALL_META: ContextVar[dict[str, Any] | None] = ContextVar("lkbot_mcp_call_meta", default=None)


def forwarding(cls: type[Any]) -> type[Any] | None:
    from mcp import ClientSession, types

    call_tool = getattr(cls, "_call_tool", None)
    if call_tool is None or "progress_callback" not in inspect.signature(call_tool).parameters:
        return None
    if "meta" not in inspect.signature(ClientSession.call_tool).parameters:
        return None

    class Forwarding(cls):  # type: ignore[misc]
        async def _call_tool(
            self, name: str, arguments: dict[str, Any], *, progress_callback: Any = None
        ) -> Any:
            meta = CALL_META.get()
            client = getattr(self, "_client", None)
            if meta is None or not isinstance(client, ClientSession):
                return await super()._call_tool(
                    name, arguments, progress_callback=progress_callback
                )
            result = await client.call_tool(
                name, arguments, progress_callback=progress_callback, meta=cast(Any, meta)
            )
            if not isinstance(result, types.CallToolResult):
                from livekit.agents import ToolError

                raise ToolError(f"the tool {name!r} returned an unexpected MCP result")
            return result

    Forwarding.__name__ = f"Forwarding{cls.__name__}"
    return Forwarding
