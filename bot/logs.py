"""Logging for the CLI: one format, and no ERROR lines for a normal disconnect."""

from __future__ import annotations

import logging
import os
import sys

# What the LiveKit Rust SDK logs at ERROR while a room is being left or closed: the
# consequences of a disconnect that is itself logged at INFO.
_DISCONNECT_NOISE = (
    "closed unexpectedly",  # publisher data channel '_reliable' closed unexpectedly
    "failed to send dc_event",  # buffer_amount_change after the channel is gone
)


class DisconnectNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.name.startswith("livekit")
            and record.levelno >= logging.ERROR
            and any(s in record.getMessage() for s in _DISCONNECT_NOISE)
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    process = os.environ.get("LKBOT_PROCESS")  # one of `bot start`'s worker processes
    where = f"[{process}] " if process else ""
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)-7s {where}%(name)s: %(message)s")
    )
    handler.addFilter(DisconnectNoise())
    logging.basicConfig(level=level, handlers=[handler])
    # one line per LLM request is noise at INFO; keep its warnings
    for noisy in ("httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
