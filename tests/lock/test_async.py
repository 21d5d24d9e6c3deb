"""AsyncLock on ``redis.asyncio``: same scripts, same guarantees."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from seckill.lock import LockNotOwnedError
from seckill.lock.aio import AsyncLock


def run(coro):
    return asyncio.run(coro)


def test_async_acquire_release_and_errors(redis_client, redis_url) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        a, b = AsyncLock(client, "alock", ttl=5), AsyncLock(client, "alock", ttl=5)
        assert await a.acquire(blocking=False)
        assert await a.owned() and await b.locked()
        assert not await b.acquire(timeout=0.1)
        await a.extend()
        await a.release()
        with pytest.raises(LockNotOwnedError):
            await a.release()
        async with b:
            assert b.fence > a.fence
        await client.aclose()

    run(scenario())


def test_async_tasks_exclude_each_other(redis_client, redis_url) -> None:
    async def scenario() -> int:
        client = aioredis.Redis.from_url(redis_url)

        async def work() -> None:
            lock = AsyncLock(client, "amx", ttl=10)
            for _ in range(10):
                async with lock:
                    value = int(await client.get("amx:counter") or 0)
                    await asyncio.sleep(0.002)
                    await client.set("amx:counter", value + 1)

        await asyncio.gather(*(work() for _ in range(6)))
        result = int(await client.get("amx:counter"))
        await client.aclose()
        return result

    assert run(scenario()) == 60


def test_async_watchdog_keeps_and_reports_loss(redis_client, redis_url) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        lost = asyncio.Event()
        a = AsyncLock(client, "adog", ttl=1.5, watchdog=True, on_lost=lambda lock: lost.set())
        await a.acquire()
        await asyncio.sleep(4.5)  # 3 x TTL
        assert await a.owned()
        await client.set(a.key, "other", px=60_000)
        await asyncio.wait_for(lost.wait(), 10)
        assert a.lease_lost
        with pytest.raises(LockNotOwnedError):
            await a.release()
        await client.aclose()

    run(scenario())


def test_cancelled_waiter_leaves_the_queue_and_no_ghost_holder(redis_client, redis_url) -> None:
    """asyncio.wait_for cancels a queued acquire: it must leave the queue, so the next
    release does not hand the lock to a task that is gone."""

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        holder = AsyncLock(client, "acancel", ttl=30)
        await holder.acquire()
        waiter = AsyncLock(client, "acancel", ttl=30)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(waiter.acquire(), 0.3)
        assert not await client.exists(holder.keys.queue, holder.keys.waiters)
        await holder.release()
        assert not await holder.locked()  # not handed to the cancelled waiter
        await client.aclose()

    run(scenario())
