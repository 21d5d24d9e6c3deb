"""Abuse tests reuse the API suite's token-authenticated clients."""

import pytest

from seckill.rate_limit import reset_local_fallback
from tests.api.conftest import make_client  # noqa: F401  (fixture)


@pytest.fixture(autouse=True)
def _fresh_throttles(redis_client):
    """Throttle state lives in the test Redis (emptied per test) and, while Redis is away, in
    this process: start each test with neither."""
    reset_local_fallback()
    yield
    reset_local_fallback()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """These tests are about who may do what, not about the hasher: skip its deliberate cost
    (seconds per account on a busy machine)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
