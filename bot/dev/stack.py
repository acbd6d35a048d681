"""`python -m bot up`: everything needed for a first conversation on this machine.

With no LIVEKIT_URL, a loopback livekit-server is started; with no LLM endpoint, the
offline local model answers (see bot.llm.local). The chat page and token endpoint
(bot.web) are served on BOT_WEB_PORT. Connection details for `python -m bot chat`,
`token` and `web` are written to .tools/dev.env.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..files import private_dir, write_private
from . import livekit_server

log = logging.getLogger("bot")
DEV_ENV = livekit_server.ROOT / ".tools" / "dev.env"


def dev_server_settings() -> dict[str, str]:
    """For chat/token: the connection settings of the local server `up` started
    (setting names as keys), or nothing when `up` is not running."""
    if not DEV_ENV.is_file():
        return {}
    pairs = (line.partition("=") for line in DEV_ENV.read_text().splitlines())
    return {key.lower(): value for key, _, value in pairs if key and value}


def _write_dev_env(server: livekit_server.DevServer) -> None:
    private_dir(DEV_ENV.parent)
    write_private(
        DEV_ENV,
        f"LIVEKIT_URL={server.url}\nLIVEKIT_API_KEY={server.api_key}\n"
        f"LIVEKIT_API_SECRET={server.api_secret}\n",
    )


async def up(ready_file: Path | None) -> None:
    from ..config import load_settings
    from ..worker.serve import serve

    settings = load_settings()
    if settings.resolved_llm_mode() == "local":
        from ..llm.local import check_installed

        check_installed(settings.local_model_path)  # before starting anything else
    server: livekit_server.DevServer | None = None
    try:
        if not settings.livekit_url:
            log.info("no LIVEKIT_URL: starting a local livekit-server on 127.0.0.1")
            server = await asyncio.to_thread(livekit_server.start)
            _write_dev_env(server)
            settings = settings.model_copy(
                update={
                    "livekit_url": server.url,
                    "livekit_api_key": server.api_key,
                    "livekit_api_secret": server.api_secret,
                }
            )
        from ..web.server import WebServer

        page = WebServer(settings)
        url = await page.start()

        def ready() -> None:
            log.info(
                "chat from another terminal:  make chat   (or: .venv/bin/python -m bot "
                "chat --room demo --identity me)"
            )
            log.info("or open the chat page:  %s   (React example: %sreact)", url, url)

        try:
            await serve(settings, dev=True, ready_file=ready_file, on_ready=ready)
        finally:
            await page.stop()
    finally:
        if server is not None:
            server.stop()
            DEV_ENV.unlink(missing_ok=True)
