"""The shared rig: a private Redis, a gunicorn + Celery stack on it, and this process pointed at
the same Redis and database; the waits every scenario polls with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from devtools.redis_server import RedisServer
from loadtest.server import (
    ROOT,
    Stack,
    celery_worker_command,
    server_env,
    start_group,
    stop_group,
)

SLACK = 8.0  # seconds of scheduling noise tolerated on a loaded machine (never the thing measured)


@dataclass
class Rig:
    """gunicorn + Celery worker on a private Redis, sharing ``database_url`` with this process.

    This process (which creates buyers and sales through the ORM) uses the rig's Redis while
    the rig is up; the previous Redis URL is restored on exit.
    """

    database_url: str
    work: Path
    extra: dict[str, str] = field(default_factory=dict)
    web_workers: int = 2
    web_threads: int = 4
    celery_concurrency: int = 2
    redis_server: RedisServer = field(default_factory=RedisServer)
    stack: Stack | None = None
    extra_procs: list[subprocess.Popen] = field(default_factory=list)
    _saved_url: str | None = None

    @property
    def env(self) -> dict[str, str]:
        return server_env(
            database_url=self.database_url,
            redis_url=self.redis_server.url,
            var_dir=self.work / "var",
            base=self._base_env,
            extra=self.extra,
        )

    def __post_init__(self) -> None:
        self._base_env = {**os.environ, "SECRET_KEY": os.environ.get("SECRET_KEY") or "faults"}

    @property
    def url(self) -> str:
        assert self.stack is not None
        return self.stack.url

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_server.url, socket_timeout=5)

    def __enter__(self) -> Rig:
        from django.conf import settings

        from seckill.infrastructure.redis_client import get_redis

        self.work.mkdir(parents=True, exist_ok=True)
        self.redis_server.start()
        try:
            self._saved_url = settings.REDIS_URL
            settings.REDIS_URL = self.redis_server.url
            get_redis.cache_clear()
            self.stack = Stack(
                self.env,
                self.work / "logs",
                web_workers=self.web_workers,
                web_threads=self.web_threads,
                celery_concurrency=self.celery_concurrency,
            ).start(timeout=120)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        from django.conf import settings

        from seckill.infrastructure.redis_client import get_redis

        while self.extra_procs:
            stop_group(self.extra_procs.pop(), grace=5)
        if self.stack is not None:
            self.stack.stop()
        self.redis_server.stop()
        if self._saved_url is not None:
            settings.REDIS_URL = self._saved_url
            get_redis.cache_clear()

    @property
    def gunicorn(self) -> subprocess.Popen:
        assert self.stack is not None
        return self.stack.procs[0]

    @property
    def celery(self) -> subprocess.Popen:
        assert self.stack is not None
        return self.stack.procs[1]

    def start_celery_worker(self, name: str) -> subprocess.Popen:
        """Another Celery worker on the rig's broker (e.g. to replace a killed one)."""
        cmd = celery_worker_command(
            concurrency=self.celery_concurrency, name=f"{name}-{uuid.uuid4().hex[:6]}@%h"
        )
        proc = start_group(cmd, self.env, self.work / "logs" / f"{name}.log")
        self.extra_procs.append(proc)
        return proc

    def audit(self, sale_id: int) -> dict:
        """``manage.py seckill_audit --sale`` in a separate process with the servers' settings."""
        done = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "seckill_audit",
                "--sale",
                str(sale_id),
                "--settle",
                "1.0",
            ],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        try:
            report = json.loads(done.stdout)
        except ValueError:
            report = {"ok": False, "error": done.stderr[-2000:]}
        report["exit_code"] = done.returncode
        return report


def db_orders(sale_id: int) -> dict[str, int]:
    """Order ids of the sale in the database -> quantity (live orders only)."""
    from seckill.models import LIVE_ORDER_STATUSES, Order

    rows = Order.objects.filter(sale_id=sale_id, status__in=LIVE_ORDER_STATUSES)
    return {str(pk): qty for pk, qty in rows.values_list("pk", "quantity")}


def wait_for(condition: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """Poll until ``condition()`` is truthy; its value, or None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return None


def wait_drained(rig: Rig, sale_id: int, timeout: float = 120.0) -> bool:
    """redis_atomic: True once no accepted order waits in Redis for the database."""
    from seckill.keys import sale_keys

    client = rig.redis()
    return bool(wait_for(lambda: client.hlen(sale_keys(sale_id).queued) == 0, timeout, 0.2))


def supervise_celery(rig: Rig) -> bool:
    """Restart the stack's Celery worker if it died, as compose's ``restart: unless-stopped``
    does; True if it had died.

    Why: with kombu 5.7 a worker whose Redis broker goes away sometimes exits with
    "Unrecoverable error: AttributeError(... 'hostname')" instead of reconnecting.
    """
    workers = [p for p in [rig.celery, *rig.extra_procs] if p.args[:3][-1] == "celery"]
    if all(p.poll() is not None for p in workers):
        rig.start_celery_worker("supervised")
        return True
    return False
