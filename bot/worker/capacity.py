"""How many rooms a worker takes, what it tells LiveKit, and what keeps rooms served.

livekit-server sends a room only to a worker whose last reported load is below
`agents.target_load` (0.7 by default) and never retries a refused job. livekit-agents
reports the box's CPU by default, so a busy 2-core box silently lost rooms. Here the
load is the worker's own capacity: `rooms / BOT_MAX_ROOMS` (rooms running, or accepted
and not yet assigned), scaled by
`BOT_LIVEKIT_TARGET_LOAD` so that the server keeps sending rooms until exactly
`BOT_MAX_ROOMS` are served. Rooms missed anyway (a late availability answer, a worker
that died) are picked up by the dispatch watchdog (`bot/fleet/watchdog.py`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoomLoad:
    """The load this worker reports to livekit-server for a number of rooms taken."""

    max_rooms: int
    target_load: float

    def of(self, rooms: int) -> float:
        return min(1.0, rooms / self.max_rooms) * self.target_load
