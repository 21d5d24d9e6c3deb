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
from urllib.parse import unquote, urlsplit

import redis
from django.conf import settings
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

CLUSTER_SCHEME = "redis+cluster"

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


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme == CLUSTER_SCHEME


def cluster_startup_nodes(url: str) -> list[ClusterNode]:
    """The ``host:port`` list of a ``redis+cluster://`` URL (port 6379 when left out).

    Raises ValueError for another scheme, no node, a database other than 0 (a cluster has only
    database 0) or a bad port, so a typo fails at start-up rather than on the first request."""
    parts = urlsplit(url)
    if parts.scheme != CLUSTER_SCHEME:
        raise ValueError(f"not a {CLUSTER_SCHEME}:// URL: {url!r}")
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"a Redis Cluster has only database 0, not {parts.path!r} ({url!r})")
    netloc = parts.netloc.rpartition("@")[2]
    nodes = []
    for item in filter(None, (n.strip() for n in netloc.split(","))):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "6379")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad cluster node {item!r} in {url!r} (use host:port)")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError(f"no cluster node in {url!r} (use {CLUSTER_SCHEME}://host:port,…)")
    return nodes


def _credentials(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    out = {}
    if parts.username:
        out["username"] = unquote(parts.username)
    if parts.password:
        out["password"] = unquote(parts.password)
    return out


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
            startup_nodes=cluster_startup_nodes(url), **_credentials(url), **options
        )
    return redis.Redis.from_url(url, **options)


@cache
def get_redis() -> AppRedis:
    """One client per process, for ``settings.REDIS_URL``."""
    return make_client(settings.REDIS_URL)


def is_cluster(client: object) -> bool:
    """True for a Redis Cluster client (or one of its pipelines)."""
    return isinstance(client, RedisCluster)
