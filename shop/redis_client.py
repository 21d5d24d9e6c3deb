"""The process-wide Redis client for the app (a connection pool shared by threads)."""

from __future__ import annotations

import time
from functools import cache

import redis
from django.conf import settings
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
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


_registered: dict[tuple[int, str], Script] = {}


def registered_script(source: str, client: redis.Redis | None = None) -> Script:
    """A Lua script registered once per client and source: calls go out as EVALSHA, and
    redis-py loads the script again by itself after a Redis restart (NOSCRIPT)."""
    client = client or get_redis()
    key = (id(client), source)
    found = _registered.get(key)
    if found is None:
        found = _registered[key] = client.register_script(source)
    return found


class RedisBackoff:
    """For callers with a fallback (throttles, the token cache): after a Redis failure, skip
    Redis in this process for ``seconds`` instead of making every request wait for a dead
    socket first. Each caller keeps its own, so one slow feature does not switch off another."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.until = 0.0

    def available(self) -> bool:
        return time.monotonic() >= self.until

    def failed(self) -> None:
        self.until = time.monotonic() + self.seconds

    def reset(self) -> None:
        """Try Redis again at once (tests)."""
        self.until = 0.0
