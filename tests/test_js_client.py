"""The TypeScript client (clients/js) against the Python side, without a server: its
unit tests (Node's test runner), its generated types against the schema, and chunk
frames made by one language reassembled by the other. `make setup` builds it
(scripts/install-web.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.protocol.chunking import Reassembler, receive, split

JS = Path(__file__).resolve().parent.parent / "clients" / "js"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None, reason="Node.js is missing (scripts/install-web.sh)"
)
TEXT = 'a "quoted" \\ line\nsé中😀\u2028' * 400  # escapes, multi-byte, astral


def _built() -> None:
    if not (JS / "dist" / "index.js").is_file():
        pytest.fail("clients/js is not built: run scripts/install-web.sh (make setup does)")


def _node(script: str, stdin: str = "") -> str:
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        cwd=JS,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def test_unit_tests() -> None:
    _built()
    out = subprocess.run(
        [
            "node",
            "--test",
            "test/chunks.test.mjs",
            "test/handshake.test.mjs",
            "test/client-tools.test.mjs",
        ],
        cwd=JS,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_generated_types_match_the_schema() -> None:
    _built()
    out = subprocess.run(
        ["node", "scripts/gen-types.mjs", "--check"], cwd=JS, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr


def test_frames_from_js_reassemble_in_python() -> None:
    _built()
    message = json.dumps({"v": 1, "type": "chat.message", "id": "m1", "text": TEXT})
    frames = json.loads(
        _node(
            'import { split } from "./dist/index.js";'
            'let s = ""; process.stdin.on("data", (d) => (s += d));'
            'process.stdin.on("end", () => console.log(JSON.stringify(split(s, "m1", 2000))));',
            message,
        )
    )
    assert len(frames) > 3 and all(len(f.encode()) <= 2000 for f in frames)
    reassembler = Reassembler(max_bytes=2**20)
    results = [receive(reassembler, f) for f in frames]
    assert results[:-1] == [None] * (len(frames) - 1)
    assert results[-1] == message


def test_frames_from_python_reassemble_in_js() -> None:
    _built()
    message = json.dumps({"v": 1, "type": "turn.reply", "id": "b1", "text": TEXT})
    frames = split(message, of="b1", max_packet=2000)
    out = _node(
        'import { Reassembler } from "./dist/index.js";'
        'let s = ""; process.stdin.on("data", (d) => (s += d));'
        'process.stdin.on("end", () => { const r = new Reassembler(); let w = null;'
        "for (const f of JSON.parse(s)) w = r.feed(JSON.parse(f)) ?? w;"
        "process.stdout.write(w); });",
        json.dumps(frames),
    )
    assert out == message
