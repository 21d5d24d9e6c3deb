"""The process-wide Redis client for the app (a connection pool shared by threads)."""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

# One quick retry: enough to replace a pooled connection that a Redis restart left dead, not the
# library default's several backed-off attempts that turn an outage into multi-second requests.
FAIL_FAST_RETRY = Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1)


@cache
def get_redis() -> redis.Redis:
    """One client per process, with short timeouts so a dead Redis fails a request fast."""
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
        health_check_interval=30,
        retry=FAIL_FAST_RETRY,
        max_connections=200,
    )
