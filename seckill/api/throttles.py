"""DRF's throttle interface on the engine's rate limiter (:mod:`seckill.rate_limit`): a refused
request is a 429 ``throttled`` with Retry-After (the API's exception handler)."""

from __future__ import annotations

from collections.abc import Callable

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from seckill import rate_limit


class _WaitThrottle(BaseThrottle):
    """A throttle whose decision is one call answering "seconds to wait" (0.0: allowed)."""

    _wait = 0.0

    def seconds_to_wait(self, request: Request) -> float:
        raise NotImplementedError

    def allow_request(self, request: Request, view) -> bool:
        self._wait = self.seconds_to_wait(request)
        return not self._wait

    def wait(self) -> float | None:
        """Seconds until this client may try again (DRF sends it as Retry-After)."""
        return self._wait or None


class _BuyerAndAddressThrottle(_WaitThrottle):
    """A per-buyer and per-address pair of limits, decided by ``limits`` in one round trip."""

    limits: Callable[..., float]  # rate_limit.placement_wait or rate_limit.purchase_token_wait

    def seconds_to_wait(self, request: Request) -> float:
        user = request.user
        buyer_id = user.pk if user and user.is_authenticated else None
        return self.limits(buyer_id=buyer_id, address=self.get_ident(request))


class OrderPlacementThrottles(_BuyerAndAddressThrottle):
    """Order placement's per-buyer and per-address limits, in one round trip."""

    limits = staticmethod(rate_limit.placement_wait)


class PurchaseTokenThrottles(_BuyerAndAddressThrottle):
    """Purchase-pass requests' own per-buyer and per-address limits, in one round trip."""

    limits = staticmethod(rate_limit.purchase_token_wait)


class AuthThrottle(_WaitThrottle):
    """Register and token: the sign-in budget per address and per submitted username."""

    def seconds_to_wait(self, request: Request) -> float:
        if rate_limit.configured_rate("auth") is None:
            return 0.0  # unlimited: do not parse the body for a username
        return rate_limit.sign_in_wait(
            address=self.get_ident(request), username=_submitted_username(request)
        )


def _submitted_username(request: Request) -> str | None:
    """The username in the body, if any (a body DRF cannot parse raises its usual 400 here)."""
    data = request.data
    value = data.get("username") if hasattr(data, "get") else None
    return value if isinstance(value, str) and value else None
