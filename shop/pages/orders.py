"""A buyer's orders as the order pages list them, and which buttons each one offers."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from seckill.models import Order, OrderStatus


def orders_of(user: AbstractBaseUser) -> list[Order]:
    """The buyer's orders in the database, newest first (queued redis_atomic ones show up once
    Celery has written them)."""
    return list(Order.objects.filter(buyer=user).select_related("sale__product").order_by("-id"))


def order_actions(order: Order) -> dict[str, bool]:
    """Which buttons to offer; the services still decide (and refuse) on their own."""
    pending = order.status == OrderStatus.PENDING_PAYMENT and not getattr(order, "queued", False)
    return {"can_pay": pending, "can_cancel": pending}
