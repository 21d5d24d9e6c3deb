"""Skip Redis for a while after it failed, for callers that have a fallback."""

from __future__ import annotations

import time


class RedisBackoff:
    """For callers with a fallback (throttles, the token cache): after a Redis failure, skip
    Redis in this process for ``seconds`` instead of making every request wait for a dead
    socket first. Each caller keeps its own, so one slow feature does not switch off another."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.until = 0.0

    def available(self) -> bool:
        return time.monotonic() >= self.until

    def failed(self) -> None:
        self.until = time.monotonic() + self.seconds

    def reset(self) -> None:
        """Try Redis again at once (tests)."""
        self.until = 0.0
