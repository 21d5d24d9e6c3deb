"""Fixtures for multi-server Redis topologies (three independent masters, a Redis Cluster).

Registered for every test package in tests/conftest.py. Every server comes from
``devtools.redis_server`` (the same redis-server binary the run command uses), listens on a
free loopback port, keeps no data on disk and is stopped at the end of the session.

- ``redis_trio``: three independent masters (Redlock). Function-scoped view over
  session-scoped servers: each test starts with all three running and empty, so a test may
  stop/kill/restart any of them (``trio.stop(1)``, ``trio.start(1)``) without affecting others.
- ``redis_cluster``: a ``redis.cluster.RedisCluster`` client on a three-master cluster
  (``devtools.redis_cluster``: ``redis-cli --cluster create ... --cluster-replicas 0``);
  ``redis_cluster_handle`` gives the servers, startup nodes and URLs as well (``app_url``:
  the app's ``redis+cluster://`` form). Mark such tests ``@pytest.mark.cluster``. It is
  session-scoped and shared: use hash-tagged keys of your own and do not stop its nodes (call
  ``start_cluster()`` for a private cluster you may break).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from devtools.redis_cluster import RedisClusterServers, start_cluster_retrying
from devtools.redis_cluster import start_cluster as start_cluster_servers
from devtools.redis_server import RedisServer


def client_options() -> dict:
    """Client settings for servers that tests stop on purpose: short timeouts and a bounded
    retry policy (redis-py 8 defaults to 10 retries, ~5 s before a dead server surfaces)."""
    return {
        "socket_timeout": 5.0,
        "socket_connect_timeout": 2.0,
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), 2),
    }


def _discard(server: RedisServer) -> None:
    server.stop()
    if server.workdir is not None:
        shutil.rmtree(server.workdir, ignore_errors=True)


@dataclass
class RedisTrio:
    """Three independent redis-server instances and one client for each."""

    servers: list[RedisServer]
    clients: list[redis.Redis] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clients = [
            redis.Redis(host="127.0.0.1", port=s.port, **client_options()) for s in self.servers
        ]

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def __len__(self) -> int:
        return len(self.servers)

    def __getitem__(self, i: int) -> RedisServer:
        return self.servers[i]

    def is_up(self, i: int) -> bool:
        process = self.servers[i].process
        return process is not None and process.poll() is None

    def stop(self, i: int) -> None:
        """Stop master ``i`` (its data is lost: no persistence)."""
        self.servers[i].stop()
        self.clients[i].connection_pool.disconnect()

    def kill(self, i: int) -> None:
        """SIGKILL master ``i``, as a crash would."""
        self.servers[i].kill()
        self.clients[i].connection_pool.disconnect()

    def start(self, i: int) -> None:
        """Start master ``i`` again if it is down (same port, empty)."""
        if not self.is_up(i):
            self.servers[i].start()

    def reset(self) -> None:
        """All three up and empty."""
        for i, client in enumerate(self.clients):
            self.start(i)
            client.flushdb()

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture(scope="session")
def _redis_trio_session() -> Iterator[RedisTrio]:
    servers: list[RedisServer] = []
    try:
        for _ in range(3):
            servers.append(RedisServer().start())
        trio = RedisTrio(servers)
        yield trio
        trio.close()
    finally:
        for server in servers:
            _discard(server)


@pytest.fixture
def redis_trio(_redis_trio_session: RedisTrio) -> Iterator[RedisTrio]:
    """Three running, empty, independent masters; restored (restarted/flushed) after the test."""
    _redis_trio_session.reset()
    yield _redis_trio_session
    _redis_trio_session.reset()


@dataclass
class RedisClusterHandle:
    """A running three-master cluster: its servers, startup nodes, URL and a client."""

    servers: list[RedisServer]
    client: RedisCluster

    @property
    def startup_nodes(self) -> list[ClusterNode]:
        return [ClusterNode("127.0.0.1", s.port) for s in self.servers]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.servers[0].port}/0"

    @property
    def app_url(self) -> str:
        """The app's ``REDIS_URL`` for this cluster (seckill.infrastructure.redis_client)."""
        return RedisClusterServers(self.servers).url

    def server_for(self, key: str) -> RedisServer:
        """The master that serves ``key``'s slot."""
        port = self.client.get_node_from_key(key).port
        return next(s for s in self.servers if s.port == port)


def _handle(cluster: RedisClusterServers) -> RedisClusterHandle:
    client = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", port) for port in cluster.ports], **client_options()
    )
    return RedisClusterHandle(cluster.servers, client)


def start_cluster(timeout: float = 30.0, extra_args: list[str] | None = None) -> RedisClusterHandle:
    """A private three-master cluster (``devtools.redis_cluster``) and a client on it
    (``extra_args``: more redis-server options for every node)."""
    return _handle(start_cluster_servers(timeout=timeout, extra_args=extra_args))


def stop_cluster(handle: RedisClusterHandle) -> None:
    """Stop a cluster from :func:`start_cluster` and delete its servers' directories."""
    handle.client.close()
    for server in handle.servers:
        _discard(server)


@pytest.fixture(scope="session")
def redis_cluster_handle() -> Iterator[RedisClusterHandle]:
    """The session's three-master cluster (servers, startup nodes, URL, client)."""
    handle = _handle(start_cluster_retrying())  # retried: a free port can be taken meanwhile
    try:
        yield handle
    finally:
        stop_cluster(handle)


@pytest.fixture(scope="session")
def redis_cluster(redis_cluster_handle: RedisClusterHandle) -> RedisCluster:
    """A ``redis.cluster.RedisCluster`` client on the session's three-master cluster."""
    return redis_cluster_handle.client
