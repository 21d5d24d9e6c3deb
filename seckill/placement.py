"""Order placement: the one entry point the API and the browser pages call.

It validates the request, answers a replayed Idempotency-Key with the first order (422 if the
replay asks for another quantity), and hands the rest to the sale's strategy
(``seckill.strategies``). The API's order endpoint first runs :func:`admit_order`, the one
Redis round trip that authenticates, throttles and, for most of a flash crowd, answers
(:mod:`seckill.admission`); :func:`place_order` is the general path everything else takes.
Failures of Redis or the database come out as :class:`~seckill.errors.Unavailable` (503),
never as a traceback or a hung request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from django.db import DatabaseError, IntegrityError
from django.db.models import Model
from django.utils import timezone

from seckill import purchase_token as purchase_tokens
from seckill.admission import IN_STOCK, SOLD_OUT, Admission, Mode, admit
from seckill.errors import (
    Busy,
    IdempotencyMismatch,
    InvalidRequest,
    LimitReached,
    NotFound,
    NotLive,
    Unavailable,
)
from seckill.infrastructure.redis_client import REDIS_OUTAGES
from seckill.lock import LockUnavailableError
from seckill.models import Order, Sale, Strategy
from seckill.sale_cache import sale_definition
from seckill.strategies import (
    CHECK_REPLAYS_INSIDE,
    SOLD_OUT_FIRST,
    STRATEGIES,
    Placement,
    new_order,
    replayed,
    settle_reservation,
    sold_out_answer,
    turn_away_if_sold_out,
)

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
    Idempotency-Key returns the first order without one (or 422 if it asked for another
    quantity). Raises a :class:`~seckill.errors.SeckillError` subclass for every refusal.
    """
    quantity = clean_quantity(quantity)
    key = clean_idempotency_key(idempotency_key)
    with backing_services():
        sale = sale_definition(sale_id)
        now = timezone.now()
        if not sale.is_open_at(now):
            raise NotLive(f"this sale is {sale.status_at(now)}")
        # A purchase token must not be spent on a replay; strategies that check replays
        # themselves would only repeat this query.
        if key and (sale.require_purchase_token or sale.strategy not in CHECK_REPLAYS_INSIDE):
            replay = replayed(sale, buyer.pk, key)
            if replay is not None:
                return same_request(replay, quantity)
        return same_request(_run_strategy(sale, buyer, quantity, key, purchase_token), quantity)


def _run_strategy(
    sale: Sale,
    buyer,
    quantity: int,
    key: str,
    purchase_token: str | None,
    *,
    sold_out_checked: bool = False,
):
    """The sale's strategy, after the checks every strategy shares. ``sold_out_checked``: the
    caller has just read the sale's sold-out flag and found stock (the admission gate), so the
    strategy's own sold-out short-circuit would only repeat that round trip."""
    if quantity > sale.per_user_limit:
        raise LimitReached(f"you may buy at most {sale.per_user_limit} of this sale")
    token_spent = (
        purchase_tokens.spent_on_success(sale, buyer.pk, purchase_token)
        if sale.require_purchase_token
        else nullcontext()
    )
    with token_spent:
        try:
            if sale.strategy in SOLD_OUT_FIRST and not sold_out_checked:
                replay = turn_away_if_sold_out(sale, buyer.pk, key)
                if replay is not None:
                    return replay
            return STRATEGIES[sale.strategy](sale, buyer, quantity, key)
        except IntegrityError:
            # Two requests with one Idempotency-Key raced past the check (strategy unsafe):
            # the unique constraint let one through; the other gets the first order.
            replay = replayed(sale, buyer.pk, key)
            if replay is None:
                raise
            return replay


def same_request(placement: Placement, quantity: int) -> Placement:
    """A replay answers only the request its key was first used for (same quantity)."""
    if not placement.created and placement.order.quantity != quantity:
        raise IdempotencyMismatch(
            f"this Idempotency-Key was used for an order of {placement.order.quantity};"
            " use a new key for another quantity"
        )
    return placement


# --- the hot path: the admission gate (seckill.admission) first ----------------------------


@dataclass
class AdmittedOrder:
    """An order request the admission gate answered for: who, what, and what it learned."""

    admission: Admission
    sale: Sale
    mode: Mode
    quantity: int
    key: str
    purchase_token: str | None
    order: Order | None  # RESERVE mode: the order the gate reserved or refused


def gate_mode(sale: Sale, now) -> Mode:
    """How much of the answer the gate can give for this sale. Only live sales whose strategy
    checks replays itself get more than token and throttles; a purchase token (spent in the
    database) or a sale not yet or no longer live takes the general path after the gate."""
    if (
        not sale.is_open_at(now)
        or sale.require_purchase_token
        or sale.strategy not in CHECK_REPLAYS_INSIDE
    ):
        return Mode.ADMIT
    return Mode.RESERVE if sale.strategy == Strategy.REDIS_ATOMIC else Mode.SOLD_OUT_CHECK


def admit_order(
    *,
    token_model: type[Model],
    token_key: str,
    address: str,
    sale_id: int,
    quantity: object,
    idempotency_key: str | None,
    purchase_token: str | None,
) -> AdmittedOrder | None:
    """Token, throttles and (where it can) the answer in one Redis round trip, no database
    query. None: the request is not one the gate answers (a bad body, an unknown sale, a token
    not in the cache, Redis away): the caller takes the general path, which answers it exactly
    as it always has, in the same order (401, 429, then 400 / 404 / 409)."""
    try:
        quantity = clean_quantity(quantity)
        key = clean_idempotency_key(idempotency_key)
        sale = sale_definition(sale_id)
    except (InvalidRequest, NotFound, DatabaseError):
        return None
    mode = gate_mode(sale, timezone.now())
    order = new_order(sale, 0, quantity, key) if mode == Mode.RESERVE else None
    admission = admit(
        token_model=token_model,
        token_key=token_key,
        address=address,
        sale=sale,
        mode=mode,
        idempotency_key=key,
        quantity=quantity,
        order=order,
    )
    if admission is None:
        return None
    return AdmittedOrder(admission, sale, mode, quantity, key, purchase_token, order)


def place_admitted(request: AdmittedOrder) -> Placement:
    """The rest of an order request the gate let in (not throttled)."""
    buyer, sale, quantity, key = request.admission.user, request.sale, request.quantity, request.key
    if request.mode == Mode.ADMIT:
        return place_order(sale.pk, buyer, quantity, key, request.purchase_token)
    with backing_services():
        if request.mode == Mode.RESERVE:
            placement = settle_reservation(sale, request.order, request.admission.reservation)
        elif request.admission.sold_out_state == SOLD_OUT:
            placement = sold_out_answer(sale, buyer.pk, key, held=request.admission.held)
        else:
            in_stock = request.admission.sold_out_state == IN_STOCK
            placement = _run_strategy(sale, buyer, quantity, key, None, sold_out_checked=in_stock)
    return same_request(placement, quantity)
