"""The staff dashboard's rows: each sale's database stock beside its Redis mirror, its orders
by status and its part of the audit."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count

from seckill import stock
from seckill.infrastructure.redis_client import REDIS_OUTAGES
from seckill.models import Order, OrderStatus
from shop.pages.sales import SaleCard, listed_sales, sale_cards

log = logging.getLogger(__name__)


@dataclass
class SaleHealth:
    """One dashboard row: the DB's stock beside Redis' mirror, orders by status, the audit."""

    card: SaleCard
    db_stock: int
    redis: dict | None
    redis_error: str | None
    by_status: dict[str, int]
    audit: SaleAudit | None = None
    statuses: list[str] = field(default_factory=lambda: [s.value for s in OrderStatus])

    @property
    def in_sync(self) -> bool | None:
        if self.redis is None or self.redis.get("stock") is None:
            return None
        return self.redis["stock"] == self.db_stock

    @property
    def status_counts(self) -> list[tuple[str, int]]:
        return [(status, self.by_status.get(status, 0)) for status in self.statuses]


def orders_by_status() -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    rows = Order.objects.values("sale_id", "status").annotate(n=Count("id")).order_by()
    for row in rows:
        counts[row["sale_id"]][row["status"]] = row["n"]
    return counts


def _mirror(sale_id: int) -> tuple[dict | None, str | None]:
    try:
        return stock.read_mirror(sale_id), None
    except REDIS_OUTAGES as exc:
        return None, f"Redis unavailable: {exc}"


@dataclass(frozen=True)
class SaleAudit:
    """One sale's part of the audit report: violations break an invariant, warnings do not."""

    violations: list[dict]
    warnings: list[dict]
    entry: dict

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class AuditResult:
    """seckill.audit.audit()'s report, or why there is none."""

    available: bool
    ok: bool | None = None
    report: dict | None = None
    error: str | None = None

    @property
    def violations(self) -> list[dict]:
        """Violations not tied to one sale."""
        return list((self.report or {}).get("violations", []))

    def for_sale(self, sale_id: int) -> SaleAudit | None:
        for entry in (self.report or {}).get("sales", []):
            if entry.get("sale_id") == sale_id:
                return SaleAudit(
                    list(entry.get("violations", [])), list(entry.get("warnings", [])), entry
                )
        return None


def run_audit() -> AuditResult:
    """seckill.audit.audit(), if that module exists yet; its failure is shown, not raised."""
    try:
        from seckill.audit import audit
    except ImportError:
        return AuditResult(available=False)
    try:
        report = audit()
    except Exception as exc:  # the dashboard must render even when the audit cannot
        log.exception("audit failed")
        return AuditResult(available=True, error=f"{type(exc).__name__}: {exc}")
    return AuditResult(available=True, ok=bool(report.get("ok")), report=report)


def dashboard(audit: AuditResult) -> list[SaleHealth]:
    sales = listed_sales()
    counts = orders_by_status()
    rows = []
    for card in sale_cards(sales):
        mirror, error = _mirror(card.sale.pk)
        rows.append(
            SaleHealth(
                card,
                card.sale.stock_left,
                mirror,
                error,
                counts.get(card.sale.pk, {}),
                audit.for_sale(card.sale.pk),
            )
        )
    return rows
