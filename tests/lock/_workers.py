"""Code run in child processes by the lock tests (importable, so ``spawn`` can find it)."""

from __future__ import annotations

import time

import redis

from seckill.lock import Lock


def increment(url: str, name: str | None, counter: str, times: int, pause: float) -> list[int]:
    """Read-modify-write ``counter`` ``times`` times, under ``Lock(name)`` unless name is None.

    Returns the fences seen (empty without a lock).
    """
    client = redis.Redis.from_url(url)
    fences = []
    for _ in range(times):
        lock = Lock(client, name, ttl=10.0) if name else None
        if lock:
            lock.acquire()
            fences.append(lock.fence)
        value = int(client.get(counter) or 0)
        time.sleep(pause)  # widen the race window so a missing lock loses updates for sure
        client.set(counter, value + 1)
        if lock:
            lock.release()
    client.close()
    return fences


HOLD_FOREVER = """
import sys, time, redis
from seckill.lock import Lock
client = redis.Redis.from_url(sys.argv[1])
lock = Lock(client, sys.argv[2], ttl=float(sys.argv[3]), watchdog=True)
assert lock.acquire(timeout=10)
print(lock.fence, flush=True)
time.sleep(600)
"""
