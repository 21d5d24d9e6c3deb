"""Buyer accounts for API clients: sign-up and API tokens."""

from __future__ import annotations

from django.contrib.auth import authenticate, get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from seckill.errors import BadCredentials


@transaction.atomic
def register(username: str, password: str) -> str:
    """Create a buyer and return their API token (inputs already validated)."""
    user = get_user_model().objects.create_user(username=username, password=password)
    return Token.objects.create(user=user).key


def token_for(username: str, password: str) -> str:
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        raise BadCredentials()
    token, _ = Token.objects.get_or_create(user=user)
    return token.key
