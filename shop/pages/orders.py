"""A buyer's orders as the order pages list them, and which buttons each one offers."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from seckill.models import Order, OrderStatus
from seckill.selectors import orders as selectors


def orders_of(user: AbstractBaseUser) -> list[Order]:
    """The buyer's orders as My orders lists them (the API lists the same)."""
    return list(selectors.orders_of(buyer=user))


def order_actions(order: Order) -> dict[str, bool]:
    """Which buttons to offer; the services still decide (and refuse) on their own."""
    pending = order.status == OrderStatus.PENDING_PAYMENT and not getattr(order, "queued", False)
    return {"can_pay": pending, "can_cancel": pending}
