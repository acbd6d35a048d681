from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bot.protocol.client import CLIENT_TYPES
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
