"""Clock access and waiting, injectable so tests can move time by hand.

Generators read a ``time_ns``-like callable (Unix nanoseconds) and wait with a ``sleep``-like
callable. Production uses :func:`time.time_ns` and :func:`time.sleep`; tests pass a fake clock whose
``sleep`` advances it, which is how clock rollback and sequence exhaustion are simulated.
"""

from __future__ import annotations

import time
from collections.abc import Callable

ClockNs = Callable[[], int]
Sleep = Callable[[float], None]

#: Clock reads spent spinning before falling back to sleep. A real clock passes the next
#: millisecond within a few hundred reads; the cap only matters to a fake clock, which moves on
#: sleep, and keeps a stuck clock from pinning a core forever.
_SPIN_READS = 20_000


def wait_until_ms(target_ms: int, clock: ClockNs = time.time_ns, sleep: Sleep = time.sleep) -> int:
    """Block until the clock reads ``target_ms`` or later; return the millisecond it read.

    Sleeps while more than a millisecond remains, then spins: ``time.sleep`` overshoots by tens of
    microseconds, which would waste a good part of each millisecond when a bulk caller drains the
    sequence every millisecond.
    """
    while True:
        now = clock() // 1_000_000
        remaining = target_ms - now
        if remaining <= 0:
            return now
        if remaining > 1:
            sleep((remaining - 1) / 1000)
            continue
        for _ in range(_SPIN_READS):
            now = clock() // 1_000_000
            if now >= target_ms:
                return now
        sleep(0.0001)


class FakeClock:
    """A hand-driven clock for tests: ``sleep`` advances it, ``set_ms``/``advance_ms`` jump it."""

    def __init__(self, start_ms: int) -> None:
        self.ns = start_ms * 1_000_000
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.ns

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.ns += max(int(seconds * 1e9), 1_000)

    def set_ms(self, ms: int) -> None:
        self.ns = ms * 1_000_000

    def advance_ms(self, ms: int) -> None:
        self.ns += ms * 1_000_000

    @property
    def ms(self) -> int:
        return self.ns // 1_000_000
