"""Shared test fixtures.

Tests talk to a real Redis. ``TEST_REDIS_URL`` picks it (the test command sets it to a private
server or to database 15 of the local one); the app under test is pointed at the same URL, so a
developer's own ``REDIS_URL`` data is never touched. Fixtures flush only that test database.
"""

import os

import pytest
import redis

pytest_plugins = ["tests.redis_topologies"]

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Before Django reads its settings: the app under test uses the test database.
os.environ["REDIS_URL"] = TEST_REDIS_URL
os.environ["CELERY_BROKER_URL"] = os.environ.get("TEST_CELERY_BROKER_URL", TEST_REDIS_URL)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return TEST_REDIS_URL


@pytest.fixture
def redis_client(redis_url):
    """A client on the test database, empty at the start and emptied at the end of the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
