"""The testing kit as a user's project has it: examples/support_bot, copied outside the
repository, runs its own tests against the installed package (its pytest plugin, a
livekit-server, the scripted LLM and the bot with the example's tools); and with its
tool broken on purpose, the tests that use the tool fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bot.dev.livekit_server import find_binary

from .procs import ROOT

EXAMPLE = ROOT / "examples" / "support_bot"


def _project() -> Path:
    where = Path(tempfile.mkdtemp(prefix="lkbot-example-"))  # outside the repository
    assert ROOT not in where.parents
    return Path(shutil.copytree(EXAMPLE, where / "support_bot"))


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOT_", "OPENAI_", "LIVEKIT_", "LKBOT_", "PYTEST_"))
    }
    env["LIVEKIT_SERVER_BIN"] = str(find_binary())  # as a user points at theirs
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.timeout(900)
def test_the_example_project_passes_outside_the_repository() -> None:
    run = _pytest(_project())
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-4000:]
    assert "6 passed, 1 skipped" in report, report[-2000:]
    assert "lkbot: the stack started in" in report


@pytest.mark.timeout(900)
def test_the_example_projects_tests_fail_when_its_tool_is_broken() -> None:
    project = _project()
    tools = project / "support_tools.py"
    broken = tools.read_text().replace("ORDERS.get(order_id.strip().upper())", "None")
    assert broken != tools.read_text()
    tools.write_text(broken)  # every lookup now fails: "no order ..."
    run = _pytest(project, "-k", "looks_an_order_up or golden")
    report = run.stdout + run.stderr
    assert run.returncode == 1, report[-4000:]
    assert "2 failed" in report, report[-2000:]
    assert "expected a tool result with status ok" in report  # what the kit says
    assert "transcript lookup differs" in report
