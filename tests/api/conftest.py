import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from seckill import token_cache
from seckill.rate_limit import reset_local_fallback


@pytest.fixture
def make_client(db):
    """An API client authenticated with a token as a new user (staff when asked)."""

    def build(username: str = "buyer", *, staff: bool = False) -> APIClient:
        user = get_user_model().objects.create_user(
            username, password="pw-1234-long", is_staff=staff
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        client.user = user
        return client

    return build


@pytest.fixture(autouse=True)
def _fresh_throttles(redis_client):
    """Throttle state lives in the test Redis (emptied per test: ``redis_client``) and, while
    Redis is away, in this process (the in-process fallback and its skip-Redis window): start
    and end each test with neither."""
    reset_local_fallback()
    token_cache.reset_fallback()  # the admission gate skips Redis while either backs off
    yield
    reset_local_fallback()
    token_cache.reset_fallback()
