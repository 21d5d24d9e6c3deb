"""Fault tests: real processes (gunicorn, Celery, redis-server, PostgreSQL backends) are killed,
frozen or restarted during a live sale; ``seckill_audit`` then checks design.md's invariants.

The scenarios live in ``loadtest.faults`` (also ``python -m loadtest.faults`` at full size);
these tests run them at the CI size against the pytest database.
"""

from __future__ import annotations

import json

import pytest

from loadtest.faults import Result
from tests.api.conftest import make_client  # noqa: F401  (fixture)
from tests.conftest import database_url_for_subprocesses


@pytest.fixture
def live_db(transactional_db) -> str:
    """The test database as a URL for the servers a scenario starts (rows committed)."""
    return database_url_for_subprocesses()


def assert_result(result: Result) -> None:
    """Every check of the scenario passed and the audit (a separate process) exited 0."""
    detail = json.dumps(
        {"checks": result.checks, "observed": result.observed, "audit": result.audit},
        indent=2,
        default=str,
    )
    print(f"{result.name}: {result.summary()}")  # shown with -s / -rA: the observed figures
    assert all(result.checks.values()), detail
    assert result.audit_ok, detail


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """These tests are about who may do what, not about the hasher: skip its deliberate cost
    (seconds per account on a busy machine)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
