"""MCP servers as tool sources (issue 22; docs/tools.md), through livekit-agents' MCP
client (`livekit-agents[mcp]`, the `mcp` SDK underneath).

BOT_MCP_SERVERS is a JSON list, inline or in a file (a path):

    [{"name": "crm", "url": "http://127.0.0.1:9000/mcp",
      "headers": {"Authorization": "Bearer ..."}, "allowed_tools": ["lookup_order"]},
     {"name": "files", "command": "python", "args": ["-m", "my_files_server"]}]

One session per server per process, shared by every room. A server that cannot be
reached at start is logged and tried again at the next call of one of its tools; a
session that drops is reopened at the next call (once: a server still down answers
the model with a tool error, the turn goes on). Whatever a server fails with reaches
the model as that tool's error, never the user as a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from livekit.agents import ToolError, llm
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...config import ConfigError, Settings
from ...sdk.mcp_meta import CALL_META, forwarding
from ...turns.turn import Turn, current_turn
from .names import tool_name

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


class McpServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    url: str | None = None  # streamable HTTP (…/mcp) or SSE (…/sse)
    headers: dict[str, str] = Field(default_factory=dict)
    command: str | None = None  # stdio: a process the bot starts
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    allowed_tools: list[str] | None = None  # None: every tool the server lists
    timeout: float = Field(default=15.0, gt=0)  # seconds one call may take
    # each call carries, in its `_meta`, the asking participant's identity and their
    # verified grant token (`io.lkbot/identity`, `io.lkbot/grants`): the server acts
    # for that user, checking the token with the app's secret
    forward_grants: bool = False


def parse_servers(value: str) -> list[McpServerConfig]:
    """BOT_MCP_SERVERS: inline JSON, or the path of a JSON file."""
    text = value.strip()
    if not text:
        return []
    if not text.startswith(("[", "{")):
        path = Path(text).expanduser()
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(f"BOT_MCP_SERVERS: cannot read {path}: {e.strerror}") from None
    try:
        raw = json.loads(text)
        if not isinstance(raw, list):
            raise ConfigError("BOT_MCP_SERVERS: a JSON list of servers is expected")
        servers = [McpServerConfig.model_validate(item) for item in raw]
    except json.JSONDecodeError as e:
        raise ConfigError(f"BOT_MCP_SERVERS: not JSON ({e.msg} at {e.pos})") from None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"BOT_MCP_SERVERS: {where}: {first['msg']}") from None
    for s in servers:
        if (s.url is None) == (s.command is None):
            raise ConfigError(f"BOT_MCP_SERVERS: server {s.name!r} needs a url or a command")
    if len({s.name for s in servers}) != len(servers):
        raise ConfigError("BOT_MCP_SERVERS: two servers have the same name")
    return servers


def _result_text(ctx: Any) -> str:
    """What the model gets of a tool's result: its text parts (other parts named by
    their type), or its structured content as JSON when it sent no content."""
    result = ctx.result
    parts = []
    for part in result.content:
        text = getattr(part, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(part, 'type', 'content')}]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured:
        return json.dumps(structured, ensure_ascii=False)
    return "\n".join(parts)


IDENTITY_META = "io.lkbot/identity"
GRANTS_META = "io.lkbot/grants"


def _forwarding(cls: type[Any], config: McpServerConfig) -> type[Any]:
    if not config.forward_grants:
        return cls
    sub = forwarding(cls)
    if sub is None:
        log.error(
            "MCP server %s: forward_grants is not available with this livekit-agents/mcp "
            "(bot/sdk/mcp_meta.py): its calls carry no grants",
            config.name,
        )
        return cls
    return sub


def call_meta(turn: Turn | None) -> dict[str, Any] | None:
    """What a call made in `turn` forwards: the sender and their verified grant token."""
    if turn is None or turn.grant is None:
        return None
    return {IDENTITY_META: turn.grant.identity, GRANTS_META: turn.grant.token}


def _session(config: McpServerConfig) -> Any:
    from livekit.agents.llm.mcp import MCPServerHTTP, MCPServerStdio

    if config.url is not None:
        return _forwarding(MCPServerHTTP, config)(
            config.url,
            allowed_tools=config.allowed_tools,
            headers=dict(config.headers),
            client_session_timeout_seconds=config.timeout,
            tool_result_resolver=_result_text,
        )
    assert config.command is not None
    return _forwarding(MCPServerStdio, config)(
        config.command,
        config.args,
        env=config.env,
        client_session_timeout_seconds=config.timeout,
        tool_result_resolver=_result_text,
    )


class McpSource:
    """One configured server: its session, reopened when it drops."""

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self._server = _session(config)
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        async with self._lock:
            if not self._server.initialized:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await self._server.initialize()

    async def tools(self) -> list[llm.Tool]:
        await self.connect()
        listed = await self._server.list_tools()
        if self.config.allowed_tools is not None:
            listed = [t for t in listed if t.info.name in self.config.allowed_tools]
        return [self._wrap(t) for t in listed]

    def _wrap(self, tool: Any) -> llm.Tool:
        """The server's tool, with its session reopened once if it dropped, and any
        failure given to the model as the tool's error."""
        schema = dict(tool.info.raw_schema)
        name = str(schema["name"])

        forward = self.config.forward_grants

        async def call(raw_arguments: dict[str, Any]) -> Any:
            meta = CALL_META.set(call_meta(current_turn()) if forward else None)
            try:
                return await attempts(raw_arguments)
            finally:
                CALL_META.reset(meta)

        async def attempts(raw_arguments: dict[str, Any]) -> Any:
            for attempt in (1, 2):
                try:
                    await self.connect()
                    return await tool(raw_arguments)
                except ToolError as e:
                    if attempt == 1 and not self._server.initialized:
                        continue  # the session dropped meanwhile: reopen it once
                    raise ToolError(f"{self.config.name}: {e.message}") from None
                except Exception as e:
                    await self._reset()
                    if attempt == 1:
                        continue
                    log.warning("MCP server %s failed on %s: %s", self.config.name, name, e)
                    raise ToolError(
                        f"the tool server {self.config.name!r} is unavailable ({type(e).__name__})"
                    ) from None
            raise AssertionError("unreachable")

        return llm.function_tool(call, raw_schema=schema)

    async def _reset(self) -> None:
        """Close the session (the next `connect` opens another on the same object: the
        tools listed from it call through it)."""
        async with self._lock:
            try:
                await self._server.aclose()
            except Exception as e:
                log.debug("closing the MCP session of %s: %s", self.config.name, e)

    async def aclose(self) -> None:
        try:
            await self._server.aclose()
        except Exception as e:
            log.debug("closing the MCP session of %s: %s", self.config.name, e)


class McpTools:
    """Every configured server's tools, for every room of this process."""

    def __init__(self, settings: Settings) -> None:
        self.sources = [McpSource(c) for c in parse_servers(settings.mcp_servers)]
        self.tools: list[llm.Tool] = []

    @property
    def names(self) -> set[str]:
        return {tool_name(t) for t in self.tools}

    async def start(self) -> None:
        """Connect and list each server's tools; one that fails is logged and left out
        (its tools are missing until the worker restarts)."""
        for source in self.sources:
            try:
                found = await source.tools()
            except Exception as e:
                log.error(
                    "MCP server %s: no tools (%s: %s)", source.config.name, type(e).__name__, e
                )
                continue
            log.info(
                "MCP server %s: %s",
                source.config.name,
                ", ".join(tool_name(t) for t in found) or "no tools",
            )
            self.tools += found

    async def aclose(self) -> None:
        await asyncio.gather(*(s.aclose() for s in self.sources), return_exceptions=True)
