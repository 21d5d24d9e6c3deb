"""Issue 14, defect 1: a waiter never shares a connection with the holder's commands, and a
renewal that cannot get through in time reports the lease lost when the lease ends."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis
import redis.asyncio as aioredis

from seckill.lock import Lock
from seckill.lock.aio import AsyncLock


def test_a_waiter_on_a_single_connection_client_never_starves_the_holder(redis_url) -> None:
    shared = redis.Redis.from_url(redis_url, single_connection_client=True)
    holder = Lock(shared, "shared-conn", ttl=0.6, watchdog=True)
    assert holder.acquire()
    waiter_got_it: list[float] = []

    def wait() -> None:
        waiter = Lock(shared, "shared-conn", ttl=0.6, poll_interval=5)  # 5 s BLPOP slices
        assert waiter.acquire(timeout=15)
        waiter_got_it.append(time.monotonic())
        waiter.release()

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(1.5)  # 2.5 leases inside the critical section: the renewals must get through
    assert not holder.lease_lost and holder.owned()
    releasing = time.monotonic()
    holder.release()  # not queued behind the waiter's BLPOP (it used to wait out the slice)
    assert time.monotonic() - releasing < 0.5
    thread.join(15)
    assert waiter_got_it and waiter_got_it[0] >= releasing  # one holder at a time
    shared.close()


def test_a_renewal_stuck_behind_a_busy_connection_reports_the_loss_when_the_lease_ends(
    redis_url,
) -> None:
    shared = redis.Redis.from_url(redis_url, single_connection_client=True)
    lost = threading.Event()
    holder = Lock(shared, "stuck-renewal", ttl=0.6, watchdog=True, on_lost=lambda _: lost.set())
    acquired_at = time.monotonic()
    assert holder.acquire()
    # The application's own blocking command on the shared connection: renewals queue behind it.
    user_wait = threading.Thread(target=shared.blpop, args=(["stuck-renewal-app-list"], 2))
    user_wait.start()
    assert lost.wait(1.6)  # at the lease's end (0.6 s), not when the connection frees (2 s)
    assert time.monotonic() - acquired_at < 1.8 and holder.lease_lost
    user_wait.join()
    shared.close()


def test_a_client_whose_pool_cannot_lend_a_second_connection_is_refused_for_waits(
    redis_url,
) -> None:
    client = redis.Redis(
        connection_pool=redis.ConnectionPool.from_url(redis_url, max_connections=1)
    )
    lock = Lock(client, "one-connection", ttl=5)
    with pytest.raises(ValueError, match="connection of its own"):
        lock.acquire(timeout=1)
    assert lock.acquire(blocking=False)  # a try-lock needs no second connection
    lock.release()
    client.close()


def test_an_async_waiter_on_a_single_connection_client_never_blocks_the_release(
    redis_client, redis_url
) -> None:
    async def scenario() -> None:
        shared = aioredis.Redis.from_url(redis_url).client()
        await shared.initialize()
        holder = AsyncLock(shared, "aio-shared-conn", ttl=10)
        assert await holder.acquire()
        waiter = AsyncLock(shared, "aio-shared-conn", ttl=10, poll_interval=5)
        waiting = asyncio.create_task(waiter.acquire(timeout=15))
        await asyncio.sleep(0.3)  # the waiter sits in its BLPOP slice
        releasing = time.monotonic()
        await holder.release()
        assert time.monotonic() - releasing < 0.5
        assert await asyncio.wait_for(waiting, 5) and waiter.fence > holder.fence
        await waiter.release()
        await shared.aclose()

    asyncio.run(scenario())
