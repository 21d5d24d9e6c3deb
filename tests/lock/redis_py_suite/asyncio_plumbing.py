"""conftest.py for redis-py's own ``tests/test_asyncio/test_lock.py``, run against seckill's
lock: their ``create_redis`` factory (parametrized over a single-connection client and a
pooled one, ids ``single``/``pool``, as theirs) and ``r``, on the suite's server."""

from __future__ import annotations

import pytest_asyncio
import redis.asyncio as redis
from redis.asyncio.connection import parse_url

from tests.conftest import REDIS_URL


@pytest_asyncio.fixture(params=[(True,), (False,)], ids=["single", "pool"])
async def create_redis(request):
    (single_connection,) = request.param
    teardown_clients = []

    async def client_factory(url: str = REDIS_URL, cls=redis.Redis, flushdb=True, **kwargs):
        single = kwargs.pop("single_connection_client", False) or single_connection
        url_options = parse_url(url)
        url_options.update(kwargs)
        pool = redis.ConnectionPool(**url_options)
        client = cls(connection_pool=pool)
        if single:
            client = client.client()
            await client.initialize()

        async def teardown() -> None:
            if flushdb:
                await client.flushdb()
            await client.aclose()
            await client.connection_pool.disconnect()

        teardown_clients.append(teardown)
        return client

    yield client_factory

    for teardown in teardown_clients:
        await teardown()


@pytest_asyncio.fixture()
async def r(create_redis):
    return await create_redis()
