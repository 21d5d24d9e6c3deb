"""idgen fixtures: a Redis client and a key prefix private to the test.

idgen tests never FLUSHDB: each works under its own random prefix and deletes only those keys,
so two runs of this suite that share a database (or other suites' data in it) cannot disturb
each other's leases and counters.
"""

import uuid
from collections.abc import Iterator

import pytest
import redis


@pytest.fixture
def rc(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(rc: redis.Redis) -> Iterator[str]:
    name = f"test-idgen-{uuid.uuid4().hex[:10]}"
    yield name
    for key in rc.scan_iter(match=f"{name}:*", count=1000):
        rc.delete(key)
