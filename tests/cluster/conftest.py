"""The app on a real three-master Redis Cluster, with Celery on RabbitMQ.

``app_on_cluster`` points this process's app (``settings.REDIS_URL``) at the session's cluster
(``redis_cluster_handle``, shared: tests empty only the app's keys, never stop its nodes);
``private_cluster`` is a cluster of the test's own that it may break. Processes started here
(Celery worker, crowds) run ``shop.settings`` with ``REDIS_URL=redis+cluster://…`` and
``CELERY_BROKER_URL=amqp://…`` on the test database.

RabbitMQ isolation: a queue name of this session's own (``CELERY_TASK_DEFAULT_QUEUE``,
deleted at the end) on the broker's default vhost, so no root-only ``rabbitmqctl add_vhost`` is
needed and a shared RabbitMQ (other checkouts' test runs, a developer's app) never hands this
session's tasks to another worker. Without RabbitMQ (``TEST_RABBITMQ_URL``, default
amqp://guest:guest@127.0.0.1:5672//) the tests that need it skip, saying why.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest

from tests.conftest import (
    app_redis_at,
    celery_worker_process,
    empty_test_redis,
    subprocess_env,
)
from tests.redis_topologies import RedisClusterHandle, start_cluster, stop_cluster

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
# Besides Celery's bindings and idgen's leases (tests.conftest), the leases on a cluster.
NODE_TIMEOUT_S = 3.0
PRIVATE_CLUSTER_ARGS = [
    "--cluster-require-full-coverage",
    "no",
    "--cluster-node-timeout",
    str(int(NODE_TIMEOUT_S * 1000)),
]
CLUSTER_KEEP = (b"_kombu.", b"idgen:worker:", b"{idgen}:worker:")


def empty_cluster(client) -> None:
    """Delete the app's keys on every master (a cluster SCAN visits them all)."""
    empty_test_redis(client, keep=CLUSTER_KEEP)


@pytest.fixture
def app_on_cluster(settings, redis_cluster_handle: RedisClusterHandle):
    """This process's app on the session's cluster, its keys emptied before and after."""
    with app_redis_at(settings, redis_cluster_handle.app_url) as client:
        empty_cluster(client)
        yield client
        empty_cluster(client)


@pytest.fixture
def private_cluster(settings) -> Iterator[Callable[..., RedisClusterHandle]]:
    """``private_cluster(*redis_server_args)``: a cluster of this test's own (it may kill a
    master), the app pointed at it; stopped and deleted after the test.

    ``cluster-require-full-coverage no``: the slots of the living masters keep serving while one
    master is down, which is what a cluster deployment of a shop sets; the dead master's slots
    answer CLUSTERDOWN (or a refused connection) once the others have marked it failed, after
    ``cluster-node-timeout`` (NODE_TIMEOUT_S here)."""
    started: list[RedisClusterHandle] = []
    with ExitStack() as pointed:

        def start(*extra_args: str) -> RedisClusterHandle:
            handle = start_cluster(extra_args=[*PRIVATE_CLUSTER_ARGS, *extra_args])
            started.append(handle)
            pointed.enter_context(app_redis_at(settings, handle.app_url))
            return handle

        try:
            yield start
        finally:
            pointed.close()
            for handle in started:
                stop_cluster(handle)


def rabbitmq_answers(url: str = RABBITMQ_URL) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    if not rabbitmq_answers():
        pytest.skip(f"RabbitMQ does not answer at {RABBITMQ_URL} (set TEST_RABBITMQ_URL)")
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def cluster_queue(rabbitmq_url) -> Iterator[str]:
    """This session's own Celery queue on RabbitMQ, deleted at the end."""
    from kombu import Connection

    name = f"seckill-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name
    with Connection(rabbitmq_url, connect_timeout=5) as conn:
        conn.default_channel.queue_delete(name)


def cluster_env(handle: RedisClusterHandle, rabbitmq_url: str, queue: str) -> dict[str, str]:
    """Environment of an app process on the cluster with Celery on RabbitMQ (needs the db)."""
    return subprocess_env(
        DJANGO_SETTINGS_MODULE="shop.settings",  # tests.settings would point it at TEST_REDIS_URL
        REDIS_URL=handle.app_url,
        CELERY_BROKER_URL=rabbitmq_url,
        CELERY_RESULT_BACKEND="",
        CELERY_TASK_DEFAULT_QUEUE=queue,
        CELERY_TASK_ALWAYS_EAGER="0",
    )


@pytest.fixture(scope="session")
def cluster_celery_worker(
    django_db_setup,
    django_db_blocker,
    redis_cluster_handle,
    rabbitmq_url,
    cluster_queue,
    tmp_path_factory,
):
    """A real Celery worker on RabbitMQ (this session's queue) and the session's cluster."""
    log = tmp_path_factory.mktemp("celery-cluster") / "worker.log"
    with django_db_blocker.unblock():
        env = cluster_env(redis_cluster_handle, rabbitmq_url, cluster_queue)
    name = f"cluster-test-{os.getpid()}@%h"

    def ready() -> bool:
        return log.exists() and b" ready." in log.read_bytes()

    with celery_worker_process(env, log, name, ready) as proc:
        yield proc


@pytest.fixture
def send_task(rabbitmq_url, cluster_queue):
    """``send_task(name, *args)``: publish a task to the cluster worker's queue on RabbitMQ
    (this process's own Celery app stays on the test broker). The connection is named
    explicitly: Celery lets the CELERY_BROKER_URL variable (the test Redis, tests/settings.py)
    win over an app's own broker setting."""
    from celery import Celery

    # Not the current app: the engine sends its tasks through celery.current_app, and a sender
    # left current would route every later test's tasks to RabbitMQ (and past eager mode).
    sender = Celery("cluster-test-sender", set_as_current=False)

    def send(name: str, *args) -> None:
        with sender.connection_for_write(rabbitmq_url) as connection:
            sender.send_task(name, args=args, queue=cluster_queue, connection=connection)

    yield send
    sender.close()


@pytest.fixture
def cluster_round_trips(monkeypatch) -> list[list[tuple]]:
    """The round trips this process makes to the cluster from now on, each the list of commands
    it carried: one command, or a cluster pipeline's (sent to their nodes in parallel)."""
    from redis.cluster import ClusterPipeline, RedisCluster

    trips: list[list[tuple]] = []
    command, execute = RedisCluster.execute_command, ClusterPipeline.execute

    def one(self, *args, **kwargs):
        trips.append([args])
        return command(self, *args, **kwargs)

    def many(self, *args, **kwargs):
        trips.append([queued.args for queued in self._execution_strategy.command_queue])
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(RedisCluster, "execute_command", one)
    monkeypatch.setattr(ClusterPipeline, "execute", many)
    return trips
