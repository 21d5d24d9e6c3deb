"""Demo data for the run command and the teaching walkthrough; safe to load again and again."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from seckill.models import Sale, Strategy
from shop.models import Product

DEMO_PRODUCTS = [
    ("Mechanical keyboard", "Hot-swappable, 75% layout, gasket mount.", "129.00", "#d33f49"),
    ("Noise-cancelling headphones", "Over-ear, 40 h battery.", "249.00", "#2f6fde"),
    ("Pour-over coffee kit", "Kettle, dripper, scale, 100 filters.", "59.00", "#8a5a44"),
]
LIVE_SALE_PRODUCT = DEMO_PRODUCTS[0][0]
UPCOMING_SALE_PRODUCT = DEMO_PRODUCTS[1][0]

DEMO_BUYER = "demo"
DEMO_STAFF = "staff"
DEMO_PASSWORD_ENV = "SECKILL_DEMO_PASSWORD"
DEFAULT_DEMO_PASSWORD = "flash-sale-demo"


@dataclass
class SeedResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


def _ensure_user(username: str, password: str, *, staff: bool, result: SeedResult):
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=username, defaults={"is_staff": staff, "is_superuser": staff}
    )
    if created:
        user.set_password(password)
        user.save()
        result.created.append(f"user {username}")
    return user


def _ensure_sale(product: Product, *, starts_in: timedelta, stock: int, result: SeedResult) -> Sale:
    """One demo sale per product; an ended one moves forward so the demo always has a live sale."""
    now = timezone.now()
    starts_at = now + starts_in
    ends_at = starts_at + timedelta(days=7)
    sale = Sale.objects.filter(product=product).order_by("id").first()
    if sale is None:
        sale = Sale.objects.create(
            product=product,
            price=(product.price * Decimal("0.5")).quantize(Decimal("0.01")),
            starts_at=starts_at,
            ends_at=ends_at,
            stock_total=stock,
            stock_left=stock,
            per_user_limit=2,
            strategy=Strategy.LOCK,
        )
        result.created.append(f"sale #{sale.pk} ({product.name})")
    elif sale.ends_at <= now:
        sale.starts_at, sale.ends_at = starts_at, ends_at
        sale.save(update_fields=["starts_at", "ends_at"])
        result.updated.append(f"sale #{sale.pk} window moved forward")
    return sale


@transaction.atomic
def seed_demo_data(password: str | None = None) -> SeedResult:
    """Products, a live sale, an upcoming one, a demo buyer and a staff user; idempotent."""
    password = password or os.environ.get(DEMO_PASSWORD_ENV, DEFAULT_DEMO_PASSWORD)
    result = SeedResult()
    products = {}
    for name, description, price, swatch in DEMO_PRODUCTS:
        product, created = Product.objects.get_or_create(
            name=name,
            defaults={"description": description, "price": Decimal(price), "swatch": swatch},
        )
        products[name] = product
        if created:
            result.created.append(f"product {name}")
    _ensure_sale(
        products[LIVE_SALE_PRODUCT], starts_in=-timedelta(minutes=1), stock=100, result=result
    )
    _ensure_sale(
        products[UPCOMING_SALE_PRODUCT], starts_in=timedelta(hours=1), stock=50, result=result
    )
    _ensure_user(DEMO_BUYER, password, staff=False, result=result)
    _ensure_user(DEMO_STAFF, password, staff=True, result=result)
    return result
