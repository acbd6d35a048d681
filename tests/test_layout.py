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


def _bot_imports(path: Path, root: Path = ROOT) -> set[str]:
    """The `bot` subpackages a module imports (absolute or relative)."""
    package = path.parent.relative_to(root).parts  # e.g. ("bot", "turns")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = (*base, *(node.module.split(".") if node.module else ()))
            else:
                target = tuple((node.module or "").split("."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = tuple(alias.name.split("."))
                if parts[0] == "bot" and len(parts) > 1:
                    found.add(parts[1])
            continue
        else:
            continue
        if target[:1] == ("bot",) and len(target) > 1:
            found.add(target[1])
    return found


@pytest.mark.parametrize(
    ("package", "never"),
    [("turns", {"core", "handlers"}), ("state", {"core", "turns", "handlers"})],
)
def test_the_message_flows_one_way(package: str, never: set[str]) -> None:
    """core -> handlers -> turns -> state: nothing below imports what is above it."""
    for path in sorted((ROOT / "bot" / package).glob("*.py")):
        assert _bot_imports(path) & never == set(), path.name


def test_the_flow_check_sees_relative_imports(tmp_path: Path) -> None:
    sample = tmp_path / "bot" / "turns" / "m.py"
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "from ..core.outbox import Outbox\nfrom ..state import journal\nimport bot.handlers.chat\n"
    )
    assert _bot_imports(sample, tmp_path) == {"core", "state", "handlers"}
