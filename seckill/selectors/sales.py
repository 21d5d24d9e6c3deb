"""Sales as shoppers see them: the sale or 404, the list, and the live stock and status, which
are Redis' figures while the sale is mirrored (they lead the database under redis_atomic)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from seckill import stock
from seckill.errors import NotFound
from seckill.lab.visibility import without_lab_sales
from seckill.models import Sale, SaleStatus


def get_sale(*, sale_id: int) -> Sale:
    """The sale with its product; NotFound (404) when there is none."""
    sale = Sale.objects.select_related("product").filter(pk=sale_id).first()
    if sale is None:
        raise NotFound(f"no sale {sale_id}")
    return sale


def listed_sales() -> QuerySet[Sale]:
    """Every sale on offer, soonest first, with its product (a lab run's sale is not)."""
    return without_lab_sales(Sale.objects.select_related("product")).order_by("starts_at", "id")


@dataclass(frozen=True)
class SaleFigures:
    stock_left: int
    status: str


def figures_from(*, sale: Sale, mirrored: int | None, now: datetime) -> SaleFigures:
    """A sale's figures given its Redis stock (None: not mirrored, the database's counts)."""
    live = sale.stock_left if mirrored is None else mirrored
    status = sale.status_at(now)
    if status == SaleStatus.LIVE and live <= 0:
        status = SaleStatus.SOLD_OUT
    return SaleFigures(stock_left=max(0, live), status=status)


def sale_figures(*, sales: Iterable[Sale]) -> dict[int, SaleFigures]:
    """Live stock and status of each sale by id, in one Redis pipeline for all of them (the
    database's figures when Redis is away)."""
    sales = list(sales)
    mirror = stock.mirrored_stock([sale.pk for sale in sales])
    now = timezone.now()
    return {
        sale.pk: figures_from(sale=sale, mirrored=mirror.get(sale.pk), now=now) for sale in sales
    }
