"""A token bucket per sender: bursts allowed, floods answered `rate_limited`."""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, *, burst: int, per_second: float) -> None:
        self._burst = float(burst)
        self._rate = per_second
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self, cost: float = 1.0) -> int:
        """Spend `cost` tokens; returns 0, or the ms to wait until they are available."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= cost:
            self._tokens -= cost
            return 0
        return max(1, int((cost - self._tokens) / self._rate * 1000))
