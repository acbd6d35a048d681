"""`python -m bot up`: everything needed for a first conversation on this machine.

With no LIVEKIT_URL, a loopback livekit-server is started; with no LLM endpoint, the
offline local model answers (see local_llm). Connection details for
`python -m bot chat` and `token` are written to .tools/dev.env.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from . import devserver

log = logging.getLogger("bot")
DEV_ENV = devserver.ROOT / ".tools" / "dev.env"


def load_dev_env() -> None:
    """For chat/token: use the local server `up` started, unless LIVEKIT_URL is set."""
    if os.environ.get("LIVEKIT_URL") or not DEV_ENV.is_file():
        return
    for line in DEV_ENV.read_text().splitlines():
        key, _, value = line.partition("=")
        if key and value:
            os.environ.setdefault(key, value)


def _write_dev_env(server: devserver.DevServer) -> None:
    DEV_ENV.parent.mkdir(parents=True, exist_ok=True)
    DEV_ENV.write_text(
        f"LIVEKIT_URL={server.url}\nLIVEKIT_API_KEY={server.api_key}\n"
        f"LIVEKIT_API_SECRET={server.api_secret}\n"
    )
    DEV_ENV.chmod(0o600)


async def up(ready_file: Path | None) -> None:
    from .config import load_settings
    from .worker import serve

    settings = load_settings()
    if settings.resolved_llm_mode() == "local":
        from .local_llm import check_installed

        check_installed(settings.local_model_path)  # before starting anything else
    server: devserver.DevServer | None = None
    try:
        if not settings.livekit_url:
            log.info("no LIVEKIT_URL: starting a local livekit-server on 127.0.0.1")
            server = await asyncio.to_thread(devserver.start)
            os.environ.update(
                LIVEKIT_URL=server.url,
                LIVEKIT_API_KEY=server.api_key,
                LIVEKIT_API_SECRET=server.api_secret,
            )
            _write_dev_env(server)
            settings = load_settings()
        log.info(
            "chat with it from another terminal:  make chat   (or: .venv/bin/python -m bot "
            "chat --room demo --identity me)"
        )
        await serve(settings, dev=True, ready_file=ready_file)
    finally:
        if server is not None:
            server.stop()
            DEV_ENV.unlink(missing_ok=True)
