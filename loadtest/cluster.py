"""What a cluster run needs besides the web nodes: a private Redis Cluster and a RabbitMQ queue.

Celery cannot use a Redis Cluster as its broker (kombu speaks to one Redis), so a cluster run
sends its tasks through RabbitMQ, on a queue of the run's own (``loadtest-<random>``, deleted
at the end) so it shares nothing with other users of the broker, and without a result backend
(nothing reads task results). Whether the app itself can run on the cluster is found out by
trying: :func:`app_cluster_support` asks the app's own Redis client factory in a subprocess.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.redis_cluster import RedisClusterServers, start_cluster_retrying
from loadtest.server import ROOT

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"

# Prints the client's class after a PING through it; fails when the URL is not understood.
_PROBE = """
import django
django.setup()
from seckill.infrastructure.redis_client import get_redis
client = get_redis()
client.ping()
print(type(client).__name__)
"""


def app_cluster_support(env: dict[str, str], timeout: float = 60) -> str | None:
    """None when the app's ``get_redis()`` gives a working ``RedisCluster`` for ``REDIS_URL``
    in ``env``; else why not, in one line."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the app's get_redis() cannot use {env['REDIS_URL']}: {last}"
    kind = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "?"
    if kind != "RedisCluster":
        return f"the app's get_redis() gave a {kind}, not a RedisCluster, for {env['REDIS_URL']}"
    return None


def check_broker(url: str, timeout: float = 3.0) -> str:
    """Connect once; raise ConnectionError saying what answered (or did not)."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        raise ConnectionError(f"broker {url} does not answer: {exc}") from None
    return f"RabbitMQ {url.rpartition('@')[2]}"


def new_queue_name() -> str:
    return f"loadtest-{secrets.token_hex(4)}"


def delete_queue(url: str, name: str) -> None:
    """Remove the run's Celery queue from the broker (and whatever is left in it)."""
    from kombu import Connection

    with Connection(url, connect_timeout=3) as conn:
        conn.default_channel.queue_delete(name)


@contextmanager
def broker_queue(url: str) -> Iterator[str]:
    """A queue name of the run's own on ``url``'s broker, deleted when the block ends."""
    name = new_queue_name()
    try:
        yield name
    finally:
        try:
            delete_queue(url, name)
        except Exception as exc:  # never mask the run's own outcome
            print(f"  could not delete broker queue {name}: {exc}", file=sys.stderr)


@contextmanager
def private_cluster(var_dir: Path) -> Iterator[RedisClusterServers]:
    """A three-master Redis Cluster on loopback for exactly as long as the block."""
    cluster = start_cluster_retrying(workdir=var_dir / "redis-cluster")
    try:
        yield cluster
    finally:
        cluster.stop()
