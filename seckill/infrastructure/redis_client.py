"""The process-wide Redis client for the app (a connection pool shared by threads).

``REDIS_URL=redis://…`` (or ``rediss://``, ``unix://``) gives a plain ``redis.Redis``;
``REDIS_URL=redis+cluster://host:port[,host:port…]`` a ``redis.cluster.RedisCluster`` that
discovers the rest of the cluster from those startup nodes. Both get the same fail-fast
timeouts and retry. On a cluster every Lua script and MULTI of the engine touches one slot (a
sale's keys share ``{sale:<id>}``), and the non-transactional pipelines are redis-py cluster
pipelines, which split their commands by node on purpose.
"""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from seckill.infrastructure.redis_urls import cluster_startup_nodes, is_cluster_url, url_credentials

# One quick retry: enough to replace a pooled connection that a Redis restart left dead, not the
# library default's several backed-off attempts that turn an outage into multi-second requests.
FAIL_FAST_RETRY = Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1)

#: What a Redis outage raises: a dead or unreachable server or node, and on a cluster a slot
#: no live master serves (CLUSTERDOWN once the others mark its master failed; no node known).
REDIS_OUTAGES: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.SlotNotCoveredError,
)

#: The app's client type: a single server or a cluster (same command API).
AppRedis = redis.Redis | RedisCluster


def make_client(url: str) -> AppRedis:
    """A client for ``url`` with the app's timeouts: a dead node fails a request fast."""
    options = {
        "socket_timeout": settings.REDIS_SOCKET_TIMEOUT,
        "socket_connect_timeout": settings.REDIS_CONNECT_TIMEOUT,
        "health_check_interval": 30,
        "retry": FAIL_FAST_RETRY,
        "max_connections": 200,  # per process (per node on a cluster)
    }
    if is_cluster_url(url):
        return RedisCluster(
            startup_nodes=cluster_startup_nodes(url), **url_credentials(url), **options
        )
    return redis.Redis.from_url(url, **options)


@cache
def get_redis() -> AppRedis:
    """One client per process, for ``settings.REDIS_URL``."""
    return make_client(settings.REDIS_URL)


def is_cluster(client: object) -> bool:
    """True for a Redis Cluster client (or one of its pipelines)."""
    return isinstance(client, RedisCluster)
