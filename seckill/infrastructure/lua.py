"""The one way the engine runs a Lua script: registered once per client and source, sent as
EVALSHA, loaded again by redis-py by itself after a Redis restart (NOSCRIPT).

One way, so every script of the engine survives a restart and a failover alike, and costs the
same one round trip (the lock library, which imports nothing of the engine, has its own)."""

from __future__ import annotations

import redis
from redis.commands.core import Script

from seckill.infrastructure.redis_client import get_redis

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
