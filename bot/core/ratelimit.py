"""A token bucket per sender: bursts allowed, floods answered `rate_limited`."""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, *, burst: int, per_second: float) -> None:
        self._burst = float(burst)
        self._rate = per_second
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self) -> int:
        """Spend one token; returns 0, or the ms to wait until one is available."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0
        return max(1, int((1 - self._tokens) / self._rate * 1000))
