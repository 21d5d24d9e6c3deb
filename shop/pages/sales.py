"""A sale as its pages show it: live status and stock (the same figures the API serves), what
the buyer may still buy, the buy form's idempotency key and the server clock for countdowns."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from seckill.models import Sale, SaleStatus
from seckill.selectors.holdings import units_allowed, units_held
from seckill.selectors.sales import listed_sales as all_sales
from seckill.selectors.sales import sale_figures
from shop.pages.error_copy import status_copy


@dataclass(frozen=True)
class SaleCard:
    """A sale with the live figures shoppers see: Redis' stock while mirrored, else the DB's."""

    sale: Sale
    stock_left: int
    status: str

    @property
    def title(self) -> str:
        return status_copy()[self.status]["title"]

    @property
    def buyable(self) -> bool:
        return self.status == SaleStatus.LIVE

    @property
    def percent_left(self) -> int:
        total = self.sale.stock_total or 1
        return max(0, min(100, round(100 * self.stock_left / total)))


def sale_cards(sales: list[Sale]) -> list[SaleCard]:
    """Status and stock exactly as the API reports them (one Redis pipeline for all sales)."""
    figures = sale_figures(sales=sales)
    return [SaleCard(sale, figures[sale.pk].stock_left, figures[sale.pk].status) for sale in sales]


def listed_sales() -> list[Sale]:
    return list(all_sales())


def new_idempotency_key() -> str:
    """A fresh key for one purchase intent: rendered into the buy form, so a double submit or a
    refresh-resubmit carries the same key and replays the first order."""
    return f"web-{uuid.uuid4().hex}"


def server_now_ms() -> int:
    """The server's clock for countdown scripts, which correct the browser's clock by it."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Allowance:
    """What the signed-in buyer may still buy in a sale: for the quantity box and the words."""

    limit: int
    held: int
    may_buy: int

    @property
    def note(self) -> str:
        if not self.held:
            return f"Limit {self.limit} per buyer."
        if self.held >= self.limit:
            return f"You hold {self.held} of the {self.limit} this sale allows per buyer."
        more = self.limit - self.held
        return f"You hold {self.held} of the {self.limit} allowed per buyer: up to {more} more."


def buyer_allowance(card: SaleCard, buyer_id: int) -> Allowance:
    held = units_held(sale_id=card.sale.pk, buyer_id=buyer_id)
    may_buy = units_allowed(sale=card.sale, held=held, stock_left=card.stock_left)
    return Allowance(card.sale.per_user_limit, held, may_buy)
