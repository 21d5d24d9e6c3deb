"""Check what a load run needs before doing anything, and say in one line what is missing.

Without these checks a run would create buyers and start servers first, then fail late with a
traceback (no Locust) or wait out connection retries (a database that does not exist).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from urllib.parse import urlsplit


class PreflightError(Exception):
    """A prerequisite is missing; the message says which and what to do."""


def check_locust() -> str:
    if importlib.util.find_spec("locust") is None:
        raise PreflightError(
            "Locust is not installed: .venv/bin/pip install -r requirements-dev.txt "
            "(bin/test installs it too)"
        )
    return f"locust {importlib.metadata.version('locust')}"


def check_database(url: str) -> str:
    """An explicit ``--database-url`` must answer and exist (it is never created for you)."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        path = Path(parts.path[1:] or ".")  # as dj-database-url reads it: sqlite:////abs/path
        if not path.parent.is_dir():
            raise PreflightError(f"--database-url: directory {path.parent} does not exist")
        return f"SQLite {path}"
    if not parts.scheme.startswith("postgres"):
        raise PreflightError(f"--database-url: use postgres://… or sqlite:///…, not {url!r}")
    import psycopg

    name = parts.path.lstrip("/")
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "does not exist" in text:
            raise PreflightError(
                f'database "{name}" does not exist on {where}: create it (createdb -h '
                f"{parts.hostname or 'localhost'} -U {parts.username or 'postgres'} {name}), or "
                "leave out --database-url for the default seckill_load, created when missing"
            ) from None
        reason = text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
        raise PreflightError(f"cannot connect to PostgreSQL at {where}: {reason}") from None
    return f"PostgreSQL {where}/{name}"


def check_redis(url: str | None) -> str:
    """``--redis-url`` must answer; without it a private redis-server must be startable."""
    if url:
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
        except redis.RedisError as exc:
            raise PreflightError(f"--redis-url {url} does not answer: {exc}") from None
        return f"Redis {url}"
    from devtools.redis_server import find_redis_server

    try:
        return f"private redis-server ({find_redis_server()})"
    except Exception as exc:
        raise PreflightError(f"no redis-server to start: {exc}") from None


def check_cluster_tools(broker_url: str) -> list[str]:
    """A cluster run: ``redis-cli`` to join the private cluster, and the broker answering."""
    from devtools.redis_server import find_redis_cli
    from loadtest.cluster import check_broker

    try:
        cli = find_redis_cli()
    except Exception as exc:
        raise PreflightError(f"--redis-cluster needs redis-cli: {exc}") from None
    try:
        broker = check_broker(broker_url)
    except ConnectionError as exc:
        raise PreflightError(
            f"--redis-cluster sends Celery's tasks through RabbitMQ: {exc} (start RabbitMQ, or "
            "pass --amqp-url)"
        ) from None
    return [f"private Redis Cluster ({cli})", broker]


def preflight(
    *, database_url: str | None, redis_url: str | None, cluster_broker_url: str | None = None
) -> list[str]:
    """What the run will use, one item each; raises PreflightError on the first gap.
    ``cluster_broker_url``: a cluster run, whose Celery broker that is."""
    found = [check_locust()]
    if database_url:
        found.append(check_database(database_url))
    if cluster_broker_url:
        return found + check_cluster_tools(cluster_broker_url)
    found.append(check_redis(redis_url))
    return found
