"""Reading settings from the environment: small pure functions, so they can be tested alone."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dj_database_url

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """A boolean switch; unknown words are an error rather than silently False."""
    raw = environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(
        f"{name}={raw!r} is not a boolean (use one of 1/0, true/false, yes/no, on/off)"
    )


def env_list(name: str, default: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    raw = environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name: str, default: int, environ: Mapping[str, str] = os.environ) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None


def database_config(url: str | None, sqlite_path: Path, pool_max_size: int = 16) -> dict[str, Any]:
    """Django DATABASES['default'] from a DATABASE_URL, or the embedded SQLite file.

    SQLite runs in WAL mode with IMMEDIATE transactions: writers queue on the database lock at
    BEGIN instead of failing with "database is locked" when a reader upgrades mid-transaction,
    which is exactly what a burst of concurrent buyers does.
    """
    if not url:
        url = f"sqlite:///{sqlite_path}"
    config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    if config["ENGINE"] == "django.db.backends.postgresql" and pool_max_size > 0:
        # A bounded pool per process: a crowd of request threads queues for a connection
        # instead of opening one each and exhausting the server's max_connections.
        config["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django must not
        config["CONN_HEALTH_CHECKS"] = False
        config["OPTIONS"] = {
            "connect_timeout": 5,
            "pool": {"min_size": 1, "max_size": pool_max_size, "timeout": 10},
        }
        return config
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # A file, not :memory:, for tests too: Celery workers and gunicorn in other processes
        # must see the same test database.
        name = Path(config["NAME"])
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
        config["TEST"] = {"NAME": str(name.with_name("test_" + name.name))}
    if config["ENGINE"] == "django.db.backends.postgresql":
        config.setdefault("OPTIONS", {})["connect_timeout"] = 5
    return config
