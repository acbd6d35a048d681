"""The browser suite: real headless Chromium (Debian's `chromium`, driven by
puppeteer-core from Node's test runner, clients/js/test/) against the chat page and
token endpoint of `python -m bot web`, a real livekit-server and the worker, with
the real livekit-client and @livekit/components-react.

`make test` installs Chromium and builds the web bundles first (scripts/install-web.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.dev.livekit_server import DevServer

from .procs import ROOT, Proc, start_web

JS = ROOT / "clients" / "js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# the suites that need no server run in tests/test_js_client.py
UNIT = {"chunks.test.mjs", "handshake.test.mjs", "client-tools.test.mjs"}
SUITES = sorted(p.name for p in (JS / "test").glob("*.test.mjs") if p.name not in UNIT)


@pytest.fixture(scope="module")
def pages(lk: DevServer, worker: Proc) -> Iterator[dict[str, str]]:
    missing = [
        what
        for what, ok in (
            (f"Chromium ({CHROMIUM})", Path(CHROMIUM).exists()),
            ("node", shutil.which("node") is not None),
            ("clients/js/node_modules", (JS / "node_modules").is_dir()),
            ("web/dist (the bundles)", (ROOT / "web" / "dist" / "chat.js").is_file()),
        )
        if not ok
    ]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-web.sh (make test does)")
    default, url = start_web(lk)
    bare, bare_url = start_web(lk, token_can_update_metadata="false", web_cors_origin="*")
    yield {"LKBOT_WEB_URL": url, "LKBOT_WEB_URL_NO_METADATA": bare_url}
    default.stop()
    bare.stop()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("suite", SUITES)
def test_browser(suite: str, pages: dict[str, str]) -> None:
    env = {**os.environ, **pages, "CHROMIUM": CHROMIUM}
    out = subprocess.run(
        ["node", "--test", "--test-reporter=spec", f"test/{suite}"],
        cwd=JS,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = out.stdout + out.stderr
    print(report)
    assert out.returncode == 0, report
    skipped = re.search(r"skipped (\d+)", report)
    assert skipped is None or skipped.group(1) == "0", report
    passed = re.search(r"pass (\d+)", report)
    assert passed is not None and int(passed.group(1)) > 0, report
