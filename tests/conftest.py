"""Shared test fixtures.

Tests talk to a real Redis. ``TEST_REDIS_URL`` picks it (the test command sets it to a private
server or to database 15 of the local one); tests/settings.py points the app under test at the
same URL, so a developer's own ``REDIS_URL`` data is never touched. Fixtures empty only that
test database, and keep Celery's broker bindings (``_kombu.*``) so a worker started for the
session stays reachable.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from loadtest.server import celery_worker_command

pytest_plugins = ["tests.redis_topologies"]

ROOT = Path(__file__).resolve().parent.parent
# tests/settings.py (loaded first by pytest-django) has set the environment from this.
TEST_REDIS_URL = os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# Celery's broker bindings, and the snowflake worker-id leases of live processes (deleting one
# would let another process claim a worker id still in use; they expire by TTL on their own).
KEEP_PREFIXES = (b"_kombu.", b"idgen:worker:")


def empty_test_redis(client: redis.Redis, keep: tuple[bytes, ...] = KEEP_PREFIXES) -> None:
    """Delete every key of the test database except those starting with ``keep``."""
    doomed = [k for k in client.scan_iter(count=1000) if not k.startswith(keep)]
    for start in range(0, len(doomed), 500):
        client.delete(*doomed[start : start + 500])


@pytest.fixture(autouse=True)
def _fresh_sale_definitions():
    """Each test starts without cached sale definitions (seckill.sale_cache): a rolled-back
    test's sale id can come back in the next test with other settings."""
    from seckill import sale_cache

    sale_cache.forget_all()
    yield


@pytest.fixture(scope="session")
def redis_url() -> str:
    return TEST_REDIS_URL


@pytest.fixture
def redis_client(redis_url):
    """A client on the test database, empty at the start and emptied at the end of the test."""
    client = redis.Redis.from_url(redis_url)
    empty_test_redis(client)
    yield client
    empty_test_redis(client)
    client.close()


def database_url_for_subprocesses() -> str:
    """A DATABASE_URL naming the database the tests use, for workers and servers we start."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or ""
    auth = f"{user}:{s['PASSWORD']}@" if s.get("PASSWORD") else (f"{user}@" if user else "")
    return f"postgres://{auth}{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for app processes started by tests: same Redis, same test database."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url_for_subprocesses(),
        REDIS_URL=TEST_REDIS_URL,
        CELERY_BROKER_URL=os.environ["CELERY_BROKER_URL"],
        CELERY_RESULT_BACKEND=TEST_REDIS_URL,
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


@contextmanager
def celery_worker_process(
    env: dict[str, str], log: Path, name: str, ready: Callable[[], bool]
) -> Iterator[subprocess.Popen]:
    """A real Celery worker (4 threads) with ``env``, logging to ``log``; yielded once
    ``ready()`` (polled) says it answers, terminated afterwards."""
    cmd = celery_worker_command(concurrency=4, name=name, log_level="info", heartbeat=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real Celery worker process on the test broker and test database, for the session."""
    from shop.celery import app

    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with django_db_blocker.unblock():
        env = subprocess_env()
    name = f"test-{os.getpid()}@%h"
    with celery_worker_process(env, log, name, lambda: bool(app.control.ping(timeout=0.5))) as proc:
        yield proc


@contextmanager
def app_redis_at(settings, url: str) -> Iterator:
    """Point this process's app at the Redis of ``url`` (a server or ``redis+cluster://``):
    a fresh client, worker-id lease, reconciler lease and throttle fallback; the app's client
    is yielded. Everything goes back to the test Redis afterwards."""
    from seckill import rate_limit, reconcile, token_cache
    from seckill.ids import reset_generator
    from seckill.infrastructure.redis_client import get_redis

    def forget() -> None:
        reset_generator()  # its worker-id lease lives on that Redis
        get_redis.cache_clear()
        reconcile._lease = None  # a LeaderLease holds the client it was made with
        rate_limit.reset_local_fallback()
        token_cache.reset_fallback()

    settings.REDIS_URL = url
    forget()
    try:
        yield get_redis()
    finally:
        forget()


@pytest.fixture
def app_redis(settings):
    """The app's own Redis (stock, locks, throttles) on a private server the test may stop or
    restart; the shared test Redis is never touched that way."""
    from devtools.redis_server import RedisServer

    server = RedisServer().start()
    with app_redis_at(settings, server.url):
        yield server
    server.stop()


@pytest.fixture
def redis_round_trips(monkeypatch):
    """``watch(marker)``: the packets this process sends to Redis from now on that contain
    ``marker``. A packet is one round trip (a pipeline's commands go out as one packet too), so
    this counts round trips, whatever the client API used to make them."""
    import redis

    original = redis.connection.AbstractConnection.send_packed_command
    watched: list[tuple[bytes, list[bytes]]] = []

    def spy(self, command, check_health=True):
        chunks = [command] if isinstance(command, str | bytes) else command
        packet = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        for marker, sent in watched:
            if marker in packet:
                sent.append(packet)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", spy)

    def watch(marker: bytes) -> list[bytes]:
        sent: list[bytes] = []
        watched.append((marker, sent))
        return sent

    return watch


@pytest.fixture
def eager_celery():
    """Run Celery tasks inline for this test (no concurrency is claimed where this is used).

    Set on the Celery app itself: it reads Django's settings once, so overriding
    ``settings.CELERY_TASK_ALWAYS_EAGER`` after the app was configured (say, by the session's
    real worker fixture) would silently send the tasks to that worker instead.
    """
    from shop.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = previous


@pytest.fixture
def persist_tasks_held(monkeypatch):
    """redis_atomic orders stay queued in Redis: the drains their placements ask for are kept
    here (as sale ids) instead of going to the broker, where the session's real worker (if one
    runs) would write them."""
    from seckill.tasks import persist_queued

    held: list[int] = []
    monkeypatch.setattr(persist_queued, "delay", lambda sale_id: held.append(sale_id))
    return held
