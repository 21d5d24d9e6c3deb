"""Abuse tests reuse the API suite's token-authenticated clients."""

import pytest

from tests.api.conftest import _fresh_throttles, make_client  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """These tests are about who may do what, not about the hasher: skip its deliberate cost
    (seconds per account on a busy machine)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
