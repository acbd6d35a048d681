"""The layout's rules: `bot/protocol` stands on its own; every package says what it is."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "bot" / "protocol"


def _outside_imports(path: Path) -> list[str]:
    """Imports in a bot/protocol module that reach the rest of `bot`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    bad: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level >= 2:  # `from ..x` leaves the package
                bad.append(f"{'.' * node.level}{node.module or ''}")
            elif _reaches_outside(node.module if node.level == 0 else None):
                bad.append(str(node.module))
        elif isinstance(node, ast.Import):
            bad += [a.name for a in node.names if _reaches_outside(a.name)]
    return bad


def _reaches_outside(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] == "bot" and not module.startswith("bot.protocol")


@pytest.mark.parametrize("path", sorted(PROTOCOL.glob("*.py")), ids=lambda p: p.name)
def test_protocol_imports_nothing_else_from_bot(path: Path) -> None:
    assert _outside_imports(path) == []


def test_the_import_check_catches_a_reach_outside(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        "from ..config import Settings\nfrom bot.core import outbox\n"
        "import bot.turns.engine\nfrom .codec import decode\nfrom bot.protocol import codes\n"
    )
    assert _outside_imports(sample) == ["..config", "bot.core", "bot.turns.engine"]


def test_protocol_runs_without_the_rest_of_bot(tmp_path: Path) -> None:
    """Copied alone into another tree, the package still imports and round-trips."""
    import shutil
    import subprocess
    import sys

    target = tmp_path / "client_app" / "bot"
    target.mkdir(parents=True)
    (target / "__init__.py").write_text("")
    shutil.copytree(PROTOCOL, target / "protocol", ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "from bot.protocol.codec import decode, encode\n"
        "from bot.protocol.outbound import Pong\n"
        'decode(b\'{"v":1,"type":"ping","id":"a"}\', max_bytes=100)\n'
        "print(encode(Pong(reply_to='a')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path / "client_app",
        env={"PYTHONPATH": str(tmp_path / "client_app")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"type":"pong"' in out.stdout


def test_every_package_has_a_docstring() -> None:
    for init in sorted((ROOT / "bot").rglob("__init__.py")):
        assert ast.get_docstring(ast.parse(init.read_text())), init
