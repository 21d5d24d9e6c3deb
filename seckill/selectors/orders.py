"""Orders as their buyer sees them: one order (in the database or still queued in Redis) or
404, and the buyer's list."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet

from seckill import order_queue
from seckill.errors import NotFound
from seckill.models import Order


def owned_order(*, order_id: int, buyer: AbstractBaseUser) -> Order:
    """The buyer's order (database or still queued); someone else's is 404, not 403."""
    order = order_queue.find_order(order_id)
    if order.buyer_id != buyer.pk:
        raise NotFound(f"no order {order_id}")
    return order


def orders_of(*, buyer: AbstractBaseUser) -> QuerySet[Order]:
    """The buyer's orders in the database, newest first (queued redis_atomic ones show up once
    Celery has written them)."""
    return Order.objects.filter(buyer=buyer).select_related("sale__product").order_by("-id")
