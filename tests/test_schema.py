from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bot.protocol.inbound import CLIENT_TYPES
from bot.protocol.schema import protocol_schema, schema_text

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "protocol.schema.json"


def test_committed_schema_matches_the_models() -> None:
    assert COMMITTED.read_text() == schema_text(), (
        "docs/protocol.schema.json is stale: run `python -m bot schema > docs/protocol.schema.json`"
    )


def test_both_directions_are_discriminated_on_type() -> None:
    schema = protocol_schema()
    client = schema["client_to_bot"]["discriminator"]
    server = schema["bot_to_client"]["discriminator"]
    assert client["propertyName"] == "type" == server["propertyName"]
    assert set(client["mapping"]) == set(CLIENT_TYPES)
    assert {
        "ack",
        "error",
        "turn.start",
        "turn.end",
        "turn.delta",
        "turn.reply",
        "chunk",
        "session.ready",
        "history.page",
        "pong",
        "turn.status",
        "turn.tool_call",
        "turn.tool_result",
        "tool.call",
        "tool.approval_request",
    } == set(server["mapping"])


def test_cli_prints_the_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot", "schema"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert json.loads(out) == protocol_schema()


def test_always_sent_envelope_fields_are_required_in_bot_messages() -> None:
    defs = protocol_schema()["bot_to_client"]["$defs"]
    mapping = protocol_schema()["bot_to_client"]["discriminator"]["mapping"]
    for type_, ref in mapping.items():
        model = defs[ref.rsplit("/", 1)[-1]]
        required = set(model["required"])
        expected = {"v", "type", "id"} | (set() if type_ == "chunk" else {"seq", "ts", "reply_to"})
        assert expected <= required, (type_, expected - required)
        for name in expected:
            assert "default" not in model["properties"][name], (type_, name)
    # optional fields stay optional: they are left out when they have no value
    end = defs["TurnEnd"]
    assert not {"reason", "usage", "error"} & set(end["required"])


def test_one_protocol_version() -> None:
    from typing import get_args

    from bot.protocol.inbound import ClientEnvelope
    from bot.protocol.outbound import BotEnvelope, Chunk
    from bot.protocol.version import PROTOCOL_LABEL, PROTOCOL_VERSION

    for model in (ClientEnvelope, BotEnvelope, Chunk):
        assert get_args(model.model_fields["v"].annotation) == (PROTOCOL_VERSION,), model
    assert PROTOCOL_LABEL.split(".")[0] == str(PROTOCOL_VERSION)
    assert protocol_schema()["title"].endswith(f"v{PROTOCOL_VERSION}")


def test_every_bot_message_the_outbox_sends_has_the_whole_envelope() -> None:
    import asyncio

    from bot.protocol.outbound import Ack, Pong, TurnReply
    from bot.state.outbox import Outbox
    from bot.testing.memory import MemoryTransport

    async def run() -> list[dict[str, object]]:
        transport = MemoryTransport()
        outbox = Outbox(transport, "alice", max_packet=1024)
        outbox.put(Pong(reply_to="p"), "lkbot")
        outbox.put(Ack(status="accepted", turn="t", reply_to="c"), "lkbot")
        outbox.put(TurnReply(turn="t", text="x" * 5000, reply_to="c"), "lkbot")  # chunked
        await outbox.flush(5)
        await outbox.aclose()
        return [json.loads(p) for _, p in transport.sent["alice"]]

    packets = asyncio.run(run())
    whole = [p for p in packets if p["type"] != "chunk"]
    frames = [p for p in packets if p["type"] == "chunk"]
    assert len(whole) == 2 and len(frames) >= 5
    for p in whole:
        assert {"v", "type", "id", "seq", "ts", "reply_to"} <= set(p)
    assert [p["seq"] for p in whole] == [1, 2]
