"""docs/testing.md shows the example project's own code: each of its Python blocks is
in examples/support_bot as written (which `make test` runs: test_example_project.py),
and its pytest settings are the example's."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "testing.md").read_text()
EXAMPLE = ROOT / "examples" / "support_bot"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOCS, flags=re.S)


def test_every_python_block_is_the_example_projects_code() -> None:
    code = "\n".join(p.read_text() for p in sorted(EXAMPLE.rglob("*.py")))
    blocks = _blocks("python")
    assert len(blocks) >= 6
    for block in blocks:
        assert block.strip() in code, block[:200]


def test_the_pytest_settings_are_the_example_projects() -> None:
    (toml,) = _blocks("toml")
    assert toml.strip() in (EXAMPLE / "pyproject.toml").read_text()
