"""How the pages write money, order statuses and machine reports.

One place, so every price carries the shop's currency and every badge the same casing.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django import template
from django.conf import settings

from seckill.models import OrderStatus

register = template.Library()

# Sentence case, like the sale badges ("Live now", "Sold out"); the model's own labels are
# derived from the enum names ("Pending Payment").
ORDER_STATUS_TITLES = {
    OrderStatus.PENDING_PAYMENT: "Pending payment",
    OrderStatus.PAID: "Paid",
    OrderStatus.CANCELLED: "Cancelled",
    OrderStatus.EXPIRED: "Expired",
}


@register.filter
def money(amount: Decimal | str | None) -> str:
    """``9.99`` -> ``$9.99`` (settings.SHOP_CURRENCY_SYMBOL)."""
    if amount in (None, ""):
        return ""
    return f"{settings.SHOP_CURRENCY_SYMBOL}{Decimal(amount):,.2f}"


@register.filter
def order_status(status: str) -> str:
    return ORDER_STATUS_TITLES.get(status, str(status).replace("_", " ").capitalize())


@register.filter
def as_json(value: object) -> str:
    """A report as the JSON the audit command prints, not a Python repr."""
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)
