"""Order placement: the one entry point the API and the browser pages call.

It validates the request, answers a replayed Idempotency-Key with the first order, and hands
the rest to the sale's strategy (``seckill.strategies``). Failures of Redis or the database
come out as :class:`~seckill.errors.Unavailable` (503), never as a traceback or a hung request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from django.db import DatabaseError, IntegrityError
from django.utils import timezone

from seckill import purchase_token as purchase_tokens
from seckill.errors import Busy, InvalidRequest, LimitReached, NotLive, Unavailable
from seckill.infrastructure.redis_client import REDIS_OUTAGES
from seckill.lock import LockUnavailableError
from seckill.models import SaleStatus
from seckill.sale_cache import sale_definition
from seckill.strategies import CHECK_REPLAYS_INSIDE, STRATEGIES, Placement, replayed

IDEMPOTENCY_KEY_MAX_LENGTH = 64
# Also the OpenAPI schema's pattern for the header (seckill.api.views): keep it ECMA-compatible.
IDEMPOTENCY_KEY = re.compile(rf"^[A-Za-z0-9._:\-]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}$")
MAX_QUANTITY = 1000


@contextmanager
def backing_services() -> Iterator[None]:
    """Translate Redis and database outages into the API's 503 ``unavailable``."""
    try:
        yield
    except (*REDIS_OUTAGES, LockUnavailableError) as exc:
        raise Unavailable("Redis is unavailable; nothing was sold, retry later") from exc
    except IntegrityError:
        raise
    except DatabaseError as exc:
        if "locked" in str(exc):  # SQLite's writer lock stayed taken for the whole timeout
            raise Busy("the database is busy; retry shortly", retry_after=1) from exc
        raise Unavailable("the database is unavailable; nothing was sold, retry later") from exc


def clean_quantity(quantity: object) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidRequest("quantity must be a whole number")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidRequest(f"quantity must be between 1 and {MAX_QUANTITY}")
    return quantity


def clean_idempotency_key(key: str | None) -> str:
    if not key:
        return ""
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidRequest(
            f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX_LENGTH} characters of letters,"
            " digits and . _ : -"
        )
    return key


def place_order(
    sale_id: int,
    buyer,
    quantity: object,
    idempotency_key: str | None = None,
    purchase_token: str | None = None,
) -> Placement:
    """Place an order for ``buyer`` under the sale's strategy.

    ``purchase_token`` is needed only for sales with ``require_purchase_token``; a replayed
    Idempotency-Key returns the first order without one. Raises a
    :class:`~seckill.errors.SeckillError` subclass for every refusal.
    """
    quantity = clean_quantity(quantity)
    key = clean_idempotency_key(idempotency_key)
    with backing_services():
        sale = sale_definition(sale_id)
        status = sale.status_at(timezone.now())
        if status in (SaleStatus.UPCOMING, SaleStatus.ENDED):
            raise NotLive(f"this sale is {status}")
        # A purchase token must not be spent on a replay; strategies that check replays
        # themselves would only repeat this query.
        if key and (sale.require_purchase_token or sale.strategy not in CHECK_REPLAYS_INSIDE):
            replay = replayed(sale, buyer.pk, key)
            if replay is not None:
                return replay
        if quantity > sale.per_user_limit:
            raise LimitReached(f"you may buy at most {sale.per_user_limit} of this sale")
        token_spent = (
            purchase_tokens.spent_on_success(sale, buyer.pk, purchase_token)
            if sale.require_purchase_token
            else nullcontext()
        )
        with token_spent:
            try:
                placement = STRATEGIES[sale.strategy](sale, buyer, quantity, key)
            except IntegrityError:
                # Two requests with one Idempotency-Key raced past the check (strategy unsafe):
                # the unique constraint let one through; the other gets the first order.
                replay = replayed(sale, buyer.pk, key)
                if replay is None:
                    raise
                return replay
    return placement
