"""Issue 14, defects 3 and 4: a wait ends by its timeout plus one round trip (not on the
server's 100 ms timer tick), and fence counters expire without ever going backwards."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

import pytest
import redis.asyncio as aioredis

from seckill.lock import Lock
from seckill.lock.aio import AsyncLock
from seckill.lock.scripts import FENCE_LIFE_MS


def overshoots(acquire, timeout: float, tries: int) -> list[float]:
    late = []
    for _ in range(tries):
        started = time.monotonic()
        assert not acquire(timeout)
        late.append(time.monotonic() - started - timeout)
    return late


def test_a_timed_out_wait_returns_by_its_timeout_plus_a_round_trip(redis_client) -> None:
    holder = Lock(redis_client, "overshoot", ttl=30)
    assert holder.acquire()
    rtt = statistics.median(overshoots(lambda _: redis_client.ping() and False, 0, 5))
    # Redis fires a BLPOP timeout on its hz tick (10/s): 0-100 ms late, ~50 ms on average.
    late = overshoots(lambda t: Lock(redis_client, "overshoot").acquire(timeout=t), 0.05, 6)
    assert min(late) >= 0 and statistics.mean(late) < 0.025 + 2 * rtt, late
    holder.release()


def test_an_async_timed_out_wait_returns_by_its_timeout_plus_a_round_trip(
    redis_client, redis_url
) -> None:
    async def scenario() -> list[float]:
        client = aioredis.Redis.from_url(redis_url)
        holder = AsyncLock(client, "overshoot-aio", ttl=30)
        assert await holder.acquire()
        late = []
        for _ in range(6):
            started = time.monotonic()
            assert not await AsyncLock(client, "overshoot-aio").acquire(timeout=0.05)
            late.append(time.monotonic() - started - 0.05)
        await holder.release()
        await client.aclose()
        return late

    late = asyncio.run(scenario())
    assert min(late) >= 0 and statistics.mean(late) < 0.03, late


def test_fence_counter_has_a_bounded_life_and_restarts_above_its_last_fence(redis_client):
    lock = Lock(redis_client, "fence-life", ttl=5)
    assert lock.acquire()
    first = lock.fence
    lock.release()
    assert 0 < redis_client.pttl(lock.keys.fence) <= FENCE_LIFE_MS + 5000  # not forever
    for _ in range(3):
        assert lock.acquire()
        assert lock.fence > first
        first = lock.fence
        lock.release()
    redis_client.pexpire(lock.keys.fence, 1)  # the idle day is over: the counter expires
    time.sleep(0.01)
    assert not redis_client.exists(lock.keys.fence)
    assert lock.acquire()
    assert lock.fence > first  # restarted from the server clock, above every earlier fence
    lock.release()


def test_a_counter_expiring_while_held_restarts_above_the_holders_fence(redis_client) -> None:
    holder = Lock(redis_client, "fence-life-handoff", ttl=5)
    assert holder.acquire()
    redis_client.pexpire(holder.keys.fence, 50)  # about to expire while the lock is held
    waiter = Lock(redis_client, "fence-life-handoff", ttl=5)
    assert not waiter.acquire(blocking=False)
    time.sleep(0.1)
    holder.release()  # nobody queued; the next acquisition reseeds the counter
    assert waiter.acquire(timeout=1) and waiter.fence > holder.fence
    assert redis_client.pttl(waiter.keys.fence) > FENCE_LIFE_MS - 60_000
    waiter.release()


@pytest.mark.cluster
def test_a_timed_out_wait_on_redis_cluster_returns_by_its_timeout_plus_a_round_trip(
    redis_cluster,
) -> None:
    holder = Lock(redis_cluster, "overshoot-cluster", ttl=30)
    assert holder.acquire()
    late = overshoots(
        lambda t: Lock(redis_cluster, "overshoot-cluster").acquire(timeout=t), 0.05, 6
    )
    assert min(late) >= 0 and statistics.mean(late) < 0.03, late
    holder.release()


@pytest.mark.cluster
def test_a_wait_on_redis_cluster_sends_acquire_and_its_blpop_in_one_round_trip(
    redis_cluster, redis_round_trips
) -> None:
    """As on one Redis: once a lock is known contended, a waiter borrows a connection of the
    node serving the lock's slot and starts waiting in one round trip (ACQUIRE and its BLPOP
    together), not ACQUIRE's and then BLPOP's."""
    holder = Lock(redis_cluster, "one-trip-cluster", ttl=30)
    assert holder.acquire()
    waits: list[bytes] = []
    for _ in range(2):  # the first wait teaches this process that the lock is contended
        waits = redis_round_trips(b"BLPOP")
        waiter = Lock(redis_cluster, "one-trip-cluster", ttl=30)
        threading.Timer(0.2, holder.release).start()
        assert waiter.acquire(timeout=5)  # handed over by the holder's release
        holder = waiter
    holder.release()
    assert waits and b"EVALSHA" in waits[0], waits
