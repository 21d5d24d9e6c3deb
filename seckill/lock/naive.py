"""``NaiveLock``: the tutorial lock, kept ON PURPOSE as a broken example. Do not use it.

It exists so the app's ``naive_lock`` strategy and the tests can show how it fails:

1. ``SETNX`` then ``EXPIRE`` as two commands: a crash between them leaves a lock with no TTL,
   held forever.
2. Release is a plain ``DEL``: a holder whose lease ran out deletes the *next* holder's lock,
   letting a third client in - two holders in the critical section, lost updates.
3. No token, so no ownership: ``owned()`` only reports what this object *believes*.
4. Waiting is a spin: SETNX, sleep a millisecond, retry - hundreds of commands per acquisition
   under contention, and no fairness.
5. No fencing token.

Use :class:`seckill.lock.Lock`, which fixes each of these.
"""

from __future__ import annotations

import time
from typing import Any

from .keys import lock_key


class NaiveLock:
    """BROKEN by design (see the module docstring); same acquire/release interface as Lock."""

    fence: int | None = None  # no fencing: nothing to protect a resource with

    def __init__(self, redis: Any, name: str, ttl: float = 10.0, sleep: float = 0.001) -> None:
        self.redis = redis
        self.name = name
        self.key = lock_key(name)  # the same naming rule as Lock (hash tag kept, for Cluster)
        self.ttl = ttl
        self.sleep = sleep
        self._held = False

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.redis.setnx(self.key, 1):
                # BUG 1: if the process dies right here, the key never expires.
                self.redis.pexpire(self.key, max(1, int(self.ttl * 1000)))
                self._held = True
                return True
            if not blocking or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(self.sleep)  # BUG 4: busy-ish spin

    def release(self) -> None:
        self._held = False
        self.redis.delete(self.key)  # BUG 2: deletes whoever's lock is there now

    def owned(self) -> bool:
        return self._held  # BUG 3: belief, not fact

    def locked(self) -> bool:
        return bool(self.redis.exists(self.key))

    def extend(self, additional: float | None = None) -> bool:
        self.redis.pexpire(self.key, int((additional or self.ttl) * 1000))  # no ownership check
        return True

    def __enter__(self) -> NaiveLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
