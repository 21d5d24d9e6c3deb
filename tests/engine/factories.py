"""Test data builders for the engine tests."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import count

from django.utils import timezone

from seckill.models import Sale
from shop.models import Product

_names = count(1)


def make_sale(
    stock: int = 10,
    strategy: str = "lock",
    per_user_limit: int = 1,
    starts_in: timedelta = timedelta(minutes=-1),
    lasts: timedelta = timedelta(hours=1),
    price: str = "9.99",
) -> Sale:
    product = Product.objects.create(name=f"Product {next(_names)}", price=Decimal("19.99"))
    starts_at = timezone.now() + starts_in
    return Sale.objects.create(
        product=product,
        price=Decimal(price),
        starts_at=starts_at,
        ends_at=starts_at + lasts,
        stock_total=stock,
        stock_left=stock,
        per_user_limit=per_user_limit,
        strategy=strategy,
    )
