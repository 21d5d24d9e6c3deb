"""Buyer accounts for API clients: sign-up and API tokens."""

from __future__ import annotations

from django.contrib.auth import authenticate, get_user_model
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

from seckill.errors import BadCredentials, InvalidRequest
from seckill.token_cache import remember


def register(username: str, password: str) -> str:
    """Create a buyer and return their API token (inputs already validated).

    A name taken between validation and insert (a concurrent sign-up) is the same 400 as one
    taken before, not an outage."""
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=username, password=password)
            token = Token.objects.create(user=user)
    except IntegrityError:
        raise InvalidRequest("that username is taken") from None
    remember([(token.key, user)])
    return token.key


def token_for(username: str, password: str) -> str:
    """The buyer's API token; signing in also warms the token cache for their next requests."""
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        raise BadCredentials()
    token, _ = Token.objects.get_or_create(user=user)
    remember([(token.key, user)])
    return token.key
