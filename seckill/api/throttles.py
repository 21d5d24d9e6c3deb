"""Rate limits, kept in Redis through Django's cache so they hold across gunicorn workers.

Rates come from settings (``SECKILL_THROTTLE_*``) so a load test can raise them.
"""

from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class OrderPlacementThrottle(UserRateThrottle):
    """Per buyer: a bot hammering the buy button gains nothing but 429s."""

    scope = "order"


class OrderPlacementIPThrottle(AnonRateThrottle):
    """Per client address, whoever is logged in: many accounts behind one bot still share it."""

    scope = "order_ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AuthThrottle(AnonRateThrottle):
    """Per address on register and token: slows password guessing and account farming."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
