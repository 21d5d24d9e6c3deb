"""Domain errors of order placement, each with the stable API code and HTTP status it maps to.

Services raise these; the API's exception handler and the browser views turn them into
``{"error": {"code", "message"}}`` bodies or page messages. Nothing else decides a status code.
"""

from __future__ import annotations


def error_body(code: str, message: str, **extra) -> dict:
    """The one error shape of every JSON answer: the API's and Django's own error views'."""
    return {"error": {"code": code, "message": message, **extra}}


class SeckillError(Exception):
    code = "error"
    status = 400
    default_message = "request failed"
    default_retry_after: float | None = None  # seconds, sent as Retry-After

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.retry_after = retry_after if retry_after is not None else self.default_retry_after


class InvalidRequest(SeckillError):
    code, status, default_message = "invalid", 400, "invalid request"


class NotFound(SeckillError):
    code, status, default_message = "not_found", 404, "not found"


class SoldOut(SeckillError):
    code, status, default_message = "sold_out", 409, "this sale is sold out"

    @classmethod
    def with_stock(cls, stock_left: int | None) -> SoldOut:
        """Refused for want of stock: "only N left" while some is (the buyer may buy fewer),
        "sold out" when none is; None (the sold-out flag) is the default message: the words
        the lock strategies' check uses too, so every strategy gives the same answer."""
        if stock_left is None:
            return cls()
        return cls("sold out" if stock_left <= 0 else f"only {stock_left} left")


class LimitReached(SeckillError):
    code, status, default_message = "limit_reached", 409, "per-buyer limit reached for this sale"


class IdempotencyMismatch(SeckillError):
    """A replayed Idempotency-Key whose request differs from the first one (its quantity): the
    key names one request, so a different one under it is refused, not silently answered with
    the first order (as payment APIs do)."""

    code, status, default_message = (
        "idempotency_mismatch",
        422,
        "this Idempotency-Key was used for a different request",
    )


class NotLive(SeckillError):
    code, status, default_message = "not_live", 409, "this sale is not live"


class InvalidState(SeckillError):
    code, status, default_message = "invalid_state", 409, "the order cannot change to that state"


class Busy(SeckillError):
    """The item lock was not free within the bounded wait: the buyer should retry shortly."""

    code, status, default_message = "busy", 429, "too many buyers right now; retry shortly"
    default_retry_after = 1


class StaleFence(Busy):
    """lock_fenced: our lease ran out and a newer holder wrote; our write was refused."""

    default_message = "the lock lease expired before the order was written; retry"


class Unavailable(SeckillError):
    code, status, default_message = "unavailable", 503, "a backing service is unavailable"
    default_retry_after = 5


class PurchaseTokenInvalid(SeckillError):
    code, status, default_message = "purchase_token", 403, "a valid purchase token is required"


class BadCredentials(SeckillError):
    code, status, default_message = (
        "unauthenticated",
        401,
        "unable to log in with those credentials",
    )
