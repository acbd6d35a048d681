"""MCP servers as tool sources, against a real MCP server process (the `mcp` SDK's
MCPServer over streamable HTTP, bot/testing/mcp_server.py): listed in session.ready
with source `mcp`, called in turns, its failures given to the model as tool errors,
its session reopened after the server restarts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings
from bot.dev.processes import free_port
from bot.llm.tools.grants import GRANTS_ATTRIBUTE
from bot.llm.tools.mcp import McpTools, parse_servers
from bot.protocol.outbound import SessionReady, TurnReply, TurnToolResult
from bot.transport import Peer

from .conftest import MakeBot
from .harness import Harness, chat, msg, script
from .test_grants import SECRET, signed

ROOT = Path(__file__).resolve().parent.parent


class McpProcess:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot.testing.mcp_server", "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60  # bounds the test, never what is tested
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the MCP server did not start"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)  # polling a port: nothing to wait on
        raise TimeoutError("the MCP server did not listen")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def server() -> Iterator[McpProcess]:
    proc = McpProcess(free_port())
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
async def mcp_bot(server: McpProcess, make_bot: MakeBot) -> AsyncIterator[Harness]:
    config = [{"name": "orders", "url": server.url, "headers": {"Authorization": "Bearer k"}}]
    tools = McpTools(Settings(mcp_servers=json.dumps(config)))
    await tools.start()
    yield await make_bot(extra_tools=tools.tools, mcp_names=frozenset(tools.names))
    await tools.aclose()


async def _tool_result(bot: Harness, who: str, body: str, n: int = 1) -> tuple[TurnToolResult, str]:
    bot.send(who, chat(body))
    msgs = await bot.turn_ends(who, n)
    turn = msgs[-1].turn  # type: ignore[union-attr]
    result = next(m for m in msgs if isinstance(m, TurnToolResult) and m.turn == turn)
    reply = next(m for m in msgs if isinstance(m, TurnReply) and m.turn == turn)
    return result, reply.text


async def test_an_mcp_servers_tools_are_offered_and_called(mcp_bot: Harness) -> None:
    mcp_bot.send("alice", msg("session.hello", id="h"))
    ready = await mcp_bot.answer("alice", "h")
    assert isinstance(ready, SessionReady)
    sources = {t.name: t.source for t in ready.tools}
    assert sources["lookup_order"] == sources["fail"] == "mcp"
    assert sources["calculate"] == "server"

    result, reply = await _tool_result(
        mcp_bot, "alice", script(tool="lookup_order", args={"order_id": "A-1042"})
    )
    assert result.status == "ok"
    order = json.loads(result.output or "")
    assert order == {"order_id": "A-1042", "status": "shipped", "auth": "Bearer k"}
    assert reply.startswith("Tool results: ")


async def test_a_failing_tool_is_an_error_for_the_model(mcp_bot: Harness) -> None:
    result, _ = await _tool_result(mcp_bot, "alice", script(tool="fail", then="Sorry."))
    assert result.status == "error" and (result.output or "").startswith("orders:")


async def test_a_restarted_server_is_reached_again(mcp_bot: Harness, server: McpProcess) -> None:
    call = script(tool="lookup_order", args={"order_id": "B-7"})
    first, _ = await _tool_result(mcp_bot, "alice", call, 1)
    assert first.status == "ok"
    server.stop()
    down, _ = await _tool_result(mcp_bot, "alice", call, 2)
    assert down.status == "error" and "unavailable" in (down.output or "")
    server.start()
    again, _ = await _tool_result(mcp_bot, "alice", call, 3)
    assert again.status == "ok" and "B-7" in (again.output or ""), again.output


@pytest.mark.parametrize("forward", [True, False])
async def test_a_server_configured_to_gets_the_asking_users_grant_with_each_call(
    server: McpProcess, make_bot: MakeBot, forward: bool
) -> None:
    """`forward_grants`: each call's `_meta` names the participant and carries their
    verified grant token (the session is the process's: a header could not say whose
    call it is). Someone without a valid grant forwards nothing; without the setting,
    nobody's is forwarded."""
    config = [{"name": "orders", "url": server.url, "forward_grants": forward}]
    tools = McpTools(Settings(mcp_servers=json.dumps(config)))
    await tools.start()
    try:
        bot = await make_bot(
            extra_tools=tools.tools, mcp_names=frozenset(tools.names), grants_secret=SECRET
        )
        ann_token = signed("ann", [])
        bot.transport._peers = [
            Peer("ann", "Ann", "standard", {GRANTS_ATTRIBUTE: ann_token}),
            Peer("bob", "Bob", "standard", {GRANTS_ATTRIBUTE: ann_token}),  # ann's: not his
        ]
        call = script(tool="lookup_order", args={"order_id": "G-1"})
        ann, _ = await _tool_result(bot, "ann", call)
        bob, _ = await _tool_result(bot, "bob", call)
        got = {who: json.loads(r.output or "") for who, r in (("ann", ann), ("bob", bob))}
        if forward:
            assert (got["ann"]["for"], got["ann"]["grants"]) == ("ann", ann_token)
        else:
            assert "grants" not in got["ann"]
        assert "grants" not in got["bob"] and "for" not in got["bob"]
    finally:
        await tools.aclose()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("{}", "a JSON list"),
        ("[{", "not JSON"),
        ('[{"name": "x"}]', "needs a url or a command"),
        ('[{"name": "x", "url": "http://h/mcp", "command": "c"}]', "needs a url or a command"),
        ('[{"name": "x", "url": "http://h/mcp"}, {"name": "x", "command": "c"}]', "same name"),
        ('[{"name": "x", "url": "http://h/mcp", "header": {}}]', "header"),
        ("/no/such/servers.json", "cannot read"),
    ],
)
def test_bad_server_lists_are_refused_at_start(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_servers(value)


def test_a_server_list_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('[{"name": "fs", "command": "python", "args": ["-m", "x"]}]')
    (fs,) = parse_servers(str(path))
    assert (fs.name, fs.command, fs.args) == ("fs", "python", ["-m", "x"])


def test_the_docs_server_list_reads_as_written() -> None:
    docs = (ROOT / "docs" / "tools.md").read_text()
    block = docs.split("```json\n", 1)[1].split("```", 1)[0]
    orders, files = parse_servers(block)
    assert orders.url == "http://127.0.0.1:9000/mcp" and orders.allowed_tools == ["lookup_order"]
    assert files.command == "python" and files.args == ["-m", "my_files_server"]
