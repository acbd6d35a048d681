"""Wall-clock stamps for the wire (`ts`) and the history."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)
