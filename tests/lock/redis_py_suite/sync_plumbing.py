"""conftest.py for redis-py's own ``tests/test_lock.py``, run against seckill's lock.

Copied as ``tests/conftest.py`` next to redis-py's untouched test files (see
tests/lock/test_redis_py_suite.py). Only plumbing, modelled on redis-py's own conftest: the
``r`` fixture (a single-connection client, as theirs), ``_get_client``, ``REDIS_INFO`` and the
version decorators - on the server named by ``REDIS_PY_SUITE_URL``, with our class standing in
for ``redis.lock.Lock`` / ``redis.asyncio.lock.Lock`` (their modules import ``Lock`` from there).
"""

from __future__ import annotations

import os

import pytest
import redis
import redis.asyncio.lock
import redis.lock
from packaging.version import Version

from seckill.lock import AsyncRedisPyCompatibleLock, RedisPyCompatibleLock

REDIS_URL = os.environ["REDIS_PY_SUITE_URL"]
redis.lock.Lock = RedisPyCompatibleLock
redis.asyncio.lock.Lock = AsyncRedisPyCompatibleLock
OURS = (RedisPyCompatibleLock, AsyncRedisPyCompatibleLock)


def _server_info() -> dict:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        info = client.info()
    finally:
        client.close()
    return {
        "version": info["redis_version"],
        "arch_bits": info["arch_bits"],
        "cluster_enabled": bool(info.get("cluster_enabled")),
        "enterprise": False,
    }


REDIS_INFO = _server_info()


def pytest_configure(config: pytest.Config) -> None:
    config.REDIS_INFO = REDIS_INFO


@pytest.fixture(autouse=True)
def _runs_against_our_lock(request: pytest.FixtureRequest) -> None:
    """Guard: a module whose ``Lock`` is still redis-py's would test redis-py, not us."""
    lock_class = getattr(request.module, "Lock", None)
    assert lock_class in OURS, f"{request.module.__name__}.Lock is {lock_class!r}, not ours"


def skip_if_server_version_lt(min_version: str) -> pytest.MarkDecorator:
    check = Version(REDIS_INFO["version"]) < Version(min_version)
    return pytest.mark.skipif(check, reason=f"Redis version required >= {min_version}")


def skip_if_server_version_gte(min_version: str) -> pytest.MarkDecorator:
    check = Version(REDIS_INFO["version"]) >= Version(min_version)
    return pytest.mark.skipif(check, reason=f"Redis version required < {min_version}")


def _get_client(cls, request, single_connection_client=True, flushdb=True, from_url=None, **kwargs):
    """redis-py's helper: a client on the suite's server (``from_url`` overrides it), a
    single-connection one by default, emptied and closed at the end of the test."""
    url_options = redis.connection.parse_url(from_url or REDIS_URL)
    url_options.update(kwargs)
    pool = redis.ConnectionPool(**url_options)
    client = cls(connection_pool=pool)
    if single_connection_client:
        client = client.client()
    if request:

        def teardown() -> None:
            if flushdb:
                client.flushdb()
            client.close()
            client.connection_pool.disconnect()

        request.addfinalizer(teardown)
    return client


@pytest.fixture()
def r(request):
    with _get_client(redis.Redis, request) as client:
        yield client
