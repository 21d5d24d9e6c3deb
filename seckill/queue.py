"""redis_atomic's hand-off: orders accepted in Redis, written to the database by Celery.

An accepted order lives in the sale's ``…:queued`` hash (and, self-contained, in the Celery
message) until :func:`persist` writes it. Persisting is idempotent by order id, so a redelivered
task (acks_late, a killed worker) never writes it twice, and the periodic sweep can re-run any
record whose task was lost.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F

from seckill import stock
from seckill.errors import NotFound
from seckill.keys import queued_order_index_key
from seckill.models import Order, OrderStatus, Sale
from shop.redis_client import get_redis

log = logging.getLogger(__name__)

QUEUED_INDEX_TTL = 24 * 3600


def record_of(order: Order) -> dict:
    """The JSON-able form of an unsaved order."""
    return {
        "id": order.id, "sale_id": order.sale_id, "buyer_id": order.buyer_id,
        "quantity": order.quantity, "unit_price": str(order.unit_price),
        "strategy": order.strategy, "idempotency_key": order.idempotency_key,
        "pay_by": order.pay_by.isoformat(),
    }


def order_from_record(record: dict) -> Order:
    order = Order(
        id=int(record["id"]), sale_id=record["sale_id"], buyer_id=record["buyer_id"],
        quantity=record["quantity"], unit_price=Decimal(record["unit_price"]),
        strategy=record["strategy"], idempotency_key=record["idempotency_key"],
        pay_by=datetime.fromisoformat(record["pay_by"]),
    )
    order.queued = True  # not in the database yet
    return order


def enqueue_persist(order: Order) -> None:
    """Index the queued order for lookups by id, then hand it to Celery.

    If the broker is down the order is still safe in Redis: the sweep persists it.
    """
    from seckill.tasks import persist_order

    get_redis().set(queued_order_index_key(order.id), order.sale_id, ex=QUEUED_INDEX_TTL)
    try:
        persist_order.delay(record_of(order))
    except Exception:  # broker trouble must not fail an accepted order
        log.exception("order %s: could not enqueue persist task; the sweep will", order.id)


def persist(record: dict) -> tuple[Order, bool]:
    """Write a queued order and its stock deduction in one transaction; (order, created)."""
    order = order_from_record(record)
    existing = Order.objects.filter(pk=order.id).first()
    if existing is None:
        try:
            with transaction.atomic():
                deducted = Sale.objects.filter(
                    pk=order.sale_id, stock_left__gte=order.quantity
                ).update(stock_left=F("stock_left") - order.quantity)
                if not deducted:
                    # Only after Redis lost its data (a restart without persistence) while this
                    # task was in flight: the mirror, rebuilt from a database that did not have
                    # this order yet, sold its units again. Never oversell: record the order,
                    # as its 202 promised, but cancelled and holding no units.
                    log.error("order %s: no stock left to persist it; recorded as cancelled",
                              order.id)
                    order.status = OrderStatus.CANCELLED
                order.save(force_insert=True)
            created = True
        except IntegrityError:
            # A concurrent delivery of the same task won; its transaction holds the deduction.
            existing = Order.objects.get(pk=order.id)
    if existing is not None:
        order, created = existing, False
    stock.forget_queued(order.sale_id, order.id)
    get_redis().delete(queued_order_index_key(order.id))
    return order, created


def find_in_sale(sale_id: int, order_id: int) -> Order | None:
    """An order of a known sale: database, else the sale's queued hash, else the database again
    (it may have been persisted between the two looks)."""
    order = Order.objects.filter(pk=order_id).first()
    if order is not None:
        return order
    record = stock.queued_records(sale_id).get(order_id)
    if record is not None:
        return order_from_record(record)
    return Order.objects.filter(pk=order_id).first()


def find_order(order_id: int) -> Order:
    """An order by id: from the database, else still queued in Redis (``order.queued``)."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        sale_id = get_redis().get(queued_order_index_key(order_id))
        if sale_id is not None:
            order = find_in_sale(int(sale_id), order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order
