"""Mutual exclusion under real contention, with negative controls that must lose updates.

Each critical section is a read-modify-write of a Redis counter with a pause between read and
write, so without mutual exclusion lost updates are certain, not merely likely.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable

from seckill.lock import Lock, NaiveLock
from tests.lock._workers import increment

COUNTER = "mx:counter"
# SECKILL_FULL=1: more threads' worth of iterations (the default form stays a few seconds).
SCALE = 4 if os.environ.get("SECKILL_FULL") == "1" else 1


def hammer(
    client, threads: int, times: int, make_lock: Callable[[], object] | None, pause: float
) -> list[tuple[int, int | None]]:
    """``threads`` threads each do ``times`` read-modify-writes; returns (value read, fence)."""
    seen: list[tuple[int, int | None]] = []

    def work() -> None:
        lock = make_lock() if make_lock else None
        for _ in range(times):
            if lock:
                lock.acquire()
            value = int(client.get(COUNTER) or 0)
            time.sleep(pause)
            client.set(COUNTER, value + 1)
            seen.append((value, getattr(lock, "fence", None)))
            if lock:
                lock.release()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    return seen


def test_threads_under_lock_lose_nothing_and_fences_follow_the_order(redis_client) -> None:
    times = 25 * SCALE
    seen = hammer(redis_client, 8, times, lambda: Lock(redis_client, "mx", ttl=10), pause=0.001)
    assert int(redis_client.get(COUNTER)) == 8 * times
    # Values read are 0..N-1, each exactly once; fences increase with them.
    fences = [fence for _, fence in sorted(seen)]
    assert sorted(v for v, _ in seen) == list(range(8 * times))
    assert all(a < b for a, b in zip(fences, fences[1:], strict=False))


def test_threads_without_lock_lose_updates(redis_client) -> None:
    hammer(redis_client, 8, 10, None, pause=0.005)
    assert int(redis_client.get(COUNTER)) < 8 * 10


def test_naive_lock_with_expiring_lease_loses_updates(redis_client) -> None:
    """The tutorial lock: its lease runs out mid-section, the next holder enters, and the first
    holder's plain DEL then frees the lock under the second - updates are lost."""
    seen = hammer(redis_client, 6, 5, lambda: NaiveLock(redis_client, "mx", ttl=0.02), pause=0.06)
    assert len(seen) == 30
    assert int(redis_client.get(COUNTER)) < 30


def test_lock_with_expiring_lease_refuses_release_instead(redis_client) -> None:
    """Same abuse with the real Lock: the late holder's release raises, never frees others."""
    a, b = Lock(redis_client, "late", ttl=0.05), Lock(redis_client, "late", ttl=10)
    a.acquire()
    time.sleep(0.2)
    assert b.acquire(timeout=10)
    try:
        a.release()
    except Exception as exc:
        assert type(exc).__name__ == "LockNotOwnedError"
    else:
        raise AssertionError("release of an expired lease passed silently")
    assert b.owned()
    b.release()


def _run_processes(
    redis_url: str, name: str | None, procs: int, times: int, pause: float
) -> list[list[int]]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        return pool.starmap(increment, [(redis_url, name, COUNTER, times, pause)] * procs)


def test_processes_under_lock_lose_nothing(redis_client, redis_url) -> None:
    results = _run_processes(redis_url, "mx-proc", 4, 25 * SCALE, pause=0.001)
    assert int(redis_client.get(COUNTER)) == 100 * SCALE
    fences = [f for r in results for f in r]
    assert len(set(fences)) == 100 * SCALE  # every acquisition got its own fence


def test_processes_without_lock_lose_updates(redis_client, redis_url) -> None:
    _run_processes(redis_url, None, 4, 10, pause=0.01)
    assert int(redis_client.get(COUNTER)) < 40
