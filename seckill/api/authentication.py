"""DRF's token authentication with the token -> user lookup answered by the token cache
(:mod:`seckill.token_cache`) when it can be."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Model
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from seckill import rate_limit, token_cache


class CachedTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>`` as DRF does it (same header, errors and 401 challenge),
    a cache hit costing one Redis GET instead of a database query.

    An invalid token is a sign-in attempt of its address (``rate_limit.sign_in_wait``): token
    guessing is slowed like password guessing, and an address out of budget is refused (429)
    -- by a process that saw it refused, before its next token costs a database query."""

    _address = ""

    def authenticate(self, request):
        self._address = rate_limit.client_address(request)
        return super().authenticate(request)

    def authenticate_credentials(self, key: str) -> tuple[AbstractBaseUser, Model]:
        found = token_cache.lookup(self.get_model(), key)
        if found is None:
            wait = rate_limit.bad_token_block(address=self._address)
            if wait:
                raise exceptions.Throttled(wait)
            try:
                user, token = super().authenticate_credentials(key)
            except exceptions.AuthenticationFailed:
                wait = rate_limit.bad_token_wait(address=self._address)
                if wait:
                    raise exceptions.Throttled(wait) from None
                raise
            token_cache.remember([(key, user)])
            return user, token
        if not found[0].is_active:  # never cached so; kept so the rule is DRF's whatever happens
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return found
