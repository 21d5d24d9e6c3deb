"""A redis-py connection class that counts the commands it sends (round trips, here)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, ClassVar

import redis


class CountingConnection(redis.Connection):
    counts: ClassVar[Counter[str]] = Counter()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.counts[str(args[0]).upper()] += 1
        super().send_command(*args, **kwargs)

    @classmethod
    def reset(cls) -> None:
        cls.counts.clear()

    @classmethod
    def total(cls) -> int:
        return sum(cls.counts.values())
