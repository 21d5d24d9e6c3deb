"""A private three-master Redis Cluster on loopback, for the tests and the load test.

Three cluster-enabled :class:`~devtools.redis_server.RedisServer` instances joined with
``redis-cli --cluster create ... --cluster-replicas 0``. Their cluster-bus ports (port + 10000)
must be free too, which :func:`cluster_port` checks. ``RedisClusterServers.url`` is the app's
form of the address, ``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3``;
:func:`client_for_url` turns either form (that or a plain ``redis://``) into a client, for
tools that read Redis without the app's settings.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.redis_server import RedisServer, find_redis_cli, free_port
from seckill.infrastructure.redis_urls import (
    CLUSTER_SCHEME,
    cluster_startup_nodes,
    is_cluster_url,
    url_credentials,
)

MASTERS = 3


def cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is valid and free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def client_for_url(url: str, **options: Any):
    """A ``RedisCluster`` for a ``redis+cluster://`` URL, else ``redis.Redis.from_url``."""
    import redis
    from redis.cluster import RedisCluster

    if not is_cluster_url(url):
        return redis.Redis.from_url(url, **options)
    return RedisCluster(startup_nodes=cluster_startup_nodes(url), **url_credentials(url), **options)


def _cluster_ok(servers: list[RedisServer]) -> bool:
    """Every node says cluster_state:ok and knows all the others."""
    import redis

    for server in servers:
        try:
            with redis.Redis(
                host="127.0.0.1", port=server.port, socket_timeout=2.0, socket_connect_timeout=2.0
            ) as client:
                info = client.cluster("info")
        except redis.RedisError:
            return False
        if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) < MASTERS:
            return False
    return True


@dataclass
class RedisClusterServers:
    """Three running cluster masters; ``stop()`` ends them (and removes temporary data dirs)."""

    servers: list[RedisServer]
    remove_dirs: bool = True

    @property
    def url(self) -> str:
        return f"{CLUSTER_SCHEME}://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
            if self.remove_dirs and server.workdir is not None:
                shutil.rmtree(server.workdir, ignore_errors=True)

    def __enter__(self) -> RedisClusterServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cluster(
    timeout: float = 30.0, workdir: Path | None = None, extra_args: list[str] | None = None
) -> RedisClusterServers:
    """Start three cluster-enabled servers and join them; every node up and ``ok`` on return.

    ``workdir``: a parent for the nodes' data dirs (default: temporary dirs); they hold
    ``nodes.conf`` and each node's log. ``extra_args``: more redis-server options for every
    node (no persistence unless they turn it on)."""
    servers: list[RedisServer] = []
    try:
        for _ in range(MASTERS):
            port = cluster_port()
            servers.append(
                RedisServer(
                    port=port,
                    workdir=None if workdir is None else workdir / f"node-{port}",
                    extra_args=[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                        *(extra_args or []),
                    ],
                ).start()
            )
        subprocess.run(
            [
                str(find_redis_cli()),
                "--cluster",
                "create",
                *[f"127.0.0.1:{s.port}" for s in servers],
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        deadline = time.monotonic() + timeout
        while not _cluster_ok(servers):
            if time.monotonic() > deadline:
                raise TimeoutError("Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        return RedisClusterServers(servers, remove_dirs=workdir is None)
    except BaseException:
        RedisClusterServers(servers, remove_dirs=workdir is None).stop()
        raise


def start_cluster_retrying(attempts: int = 3, **kwargs: Any) -> RedisClusterServers:
    """:func:`start_cluster`, again when a port picked as free was taken by a neighbour."""
    failure: Exception | None = None
    for _ in range(attempts):
        try:
            return start_cluster(**kwargs)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            failure = exc
    raise failure or ValueError("attempts must be at least 1")
