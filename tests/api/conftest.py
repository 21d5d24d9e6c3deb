import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


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
    """Throttle counters live in the Redis cache: every test starts from an empty test DB."""
