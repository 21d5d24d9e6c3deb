"""What the browser pages show, computed in one place so views stay thin and templates dumb.

Nothing here decides a sale: placement, payment and restocking live in ``seckill``. This module
turns their results into page copy — the friendly text for each error code, one sentence per
strategy, a sale's live status and stock (the same figures the API serves), the teaching panel's
facts about a purchase, and the staff dashboard's rows.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import redis
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.backends.base import SessionBase
from django.db.models import Count

from seckill import stock
from seckill.api.serializers import SaleSerializer, mirror_context
from seckill.errors import SeckillError
from seckill.ids import parse_order_id
from seckill.models import Order, OrderStatus, Sale, SaleStatus, Strategy
from seckill.strategies import Placement

log = logging.getLogger(__name__)


# --- error copy -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    title: str
    hint: str


# The one place an error code becomes words on a page. Keys are SeckillError codes.
ERROR_COPY: dict[str, Copy] = {
    "sold_out": Copy(
        "Sold out",
        "Every unit has been sold. Units from cancelled or unpaid orders come back, so the "
        "button returns if stock does.",
    ),
    "limit_reached": Copy(
        "Limit reached",
        "You already hold as many as this sale allows per buyer. Your orders are under My orders.",
    ),
    "not_live": Copy(
        "This sale is not live",
        "Buying opens when the countdown reaches zero, and closes when the sale ends.",
    ),
    "busy": Copy(
        "Too many buyers at this moment",
        "Nothing was sold to you yet. Try again in {retry_after} s: the retry is safe, it can "
        "never create a second order.",
    ),
    "invalid": Copy("That request was not valid", "Check the quantity and try again."),
    "not_found": Copy("Not found", "It may have been removed; start again from the sales list."),
    "unavailable": Copy(
        "The shop is having trouble",
        "A backing service (Redis or the database) is down, so nothing was sold. Try again in "
        "a minute.",
    ),
    "purchase_token": Copy(
        "This sale needs a purchase pass",
        "The page fetches a single-use pass as you press Buy (JavaScript must be on). Reload the "
        "page and press Buy again.",
    ),
    "invalid_state": Copy(
        "That can't be done now", "The order has moved on; the page shows its current status."
    ),
}
FALLBACK_COPY = Copy("Something went wrong", "Please try again.")


@dataclass(frozen=True)
class PageError:
    """An error as a page shows it: headline, the service's own explanation, what to do."""

    code: str
    title: str
    message: str
    hint: str
    status: int
    retry_after: int | None = None


def describe_error(exc: SeckillError) -> PageError:
    """Page copy for a refusal from the engine, keyed by its stable code."""
    copy = ERROR_COPY.get(exc.code, FALLBACK_COPY)
    retry = max(1, round(exc.retry_after)) if exc.retry_after else None
    hint = copy.hint.format(retry_after=retry or 1)
    return PageError(exc.code, copy.title, exc.message, hint, exc.status, retry)


def status_copy() -> dict[str, dict[str, str]]:
    """Banner copy per sale status, for the template and (as JSON) for the live-update script."""
    return {
        SaleStatus.UPCOMING: {"title": "Starts soon", "hint": ERROR_COPY["not_live"].hint},
        SaleStatus.LIVE: {"title": "Live now", "hint": ""},
        SaleStatus.SOLD_OUT: {
            "title": ERROR_COPY["sold_out"].title,
            "hint": ERROR_COPY["sold_out"].hint,
        },
        SaleStatus.ENDED: {"title": "Ended", "hint": "This sale is over."},
    }


# --- strategies -------------------------------------------------------------------------------

STRATEGY_NOTES: dict[str, str] = {
    Strategy.UNSAFE: "Reads the stock and writes it back with no lock at all, so two buyers at "
    "the same instant can both take the last unit: it oversells on purpose, to show the race.",
    Strategy.NAIVE_LOCK: "Takes a Redis lock with SETNX, then EXPIRE, and frees it with a plain "
    "DEL, as many blog posts do: a holder that outlives its lease lets a second buyer in.",
    Strategy.LOCK: "Buyers take turns under a Redis lease lock that only its owner can release "
    "(a Lua compare-and-delete) and that a watchdog renews while the holder is alive.",
    Strategy.LOCK_FENCED: "The token lock plus a fencing token: each holder gets a larger number "
    "and the database refuses a write carrying an older one, so a stalled holder cannot oversell.",
    Strategy.REDIS_ATOMIC: "One Lua script checks your limit and deducts the stock inside Redis in "
    "a single step; a Celery worker writes the order to the database a moment later.",
    Strategy.DB_ROW_LOCK: "SELECT … FOR UPDATE locks the sale's row, so the database itself makes "
    "buyers take turns: safe, but the database becomes the bottleneck.",
}


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    label: str
    note: str


def strategy_info(name: str) -> StrategyInfo:
    return StrategyInfo(name, Strategy(name).label, STRATEGY_NOTES[name])


# --- sales ------------------------------------------------------------------------------------


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
    serializer = SaleSerializer(context=mirror_context(sales))
    return [
        SaleCard(sale, serializer.get_stock_left(sale), serializer.get_status(sale))
        for sale in sales
    ]


def listed_sales() -> list[Sale]:
    return list(Sale.objects.select_related("product").order_by("starts_at", "id"))


def new_idempotency_key() -> str:
    """A fresh key for one purchase intent: rendered into the buy form, so a double submit or a
    refresh-resubmit carries the same key and replays the first order."""
    return f"web-{uuid.uuid4().hex}"


def server_now_ms() -> int:
    """The server's clock for countdown scripts, which correct the browser's clock by it."""
    return int(time.time() * 1000)


# --- the teaching panel -----------------------------------------------------------------------

SESSION_PLACEMENTS = "seckill_placements"


def remember_placement(session: SessionBase, sale_id: int, placement: Placement) -> None:
    """Keep what the engine reported about the buyer's last purchase in a sale for the panel
    (the lock wait and the fence of the lock held are not all stored on the order)."""
    placements = dict(session.get(SESSION_PLACEMENTS, {}))
    placements[str(sale_id)] = {
        "order_id": str(placement.order.pk),
        "lock_wait_ms": placement.lock_wait_ms,
        "fence": placement.fence,
        "replayed": not placement.created,
        "queued": placement.queued,
    }
    session[SESSION_PLACEMENTS] = placements


def recalled_placement(session: SessionBase, sale_id: int) -> dict | None:
    return session.get(SESSION_PLACEMENTS, {}).get(str(sale_id))


@dataclass(frozen=True)
class PurchaseFacts:
    """What happened underneath one purchase: the lock wait, the fence, the order id's parts."""

    order_id: str
    lock_wait_ms: float | None
    fence: int | None
    id_time: datetime | None
    id_worker: int | None
    id_sequence: int | None
    replayed: bool = False
    queued: bool = False


def purchase_facts(
    order_id: int | str,
    lock_wait_ms: float | None = None,
    fence: int | None = None,
    *,
    replayed: bool = False,
    queued: bool = False,
) -> PurchaseFacts:
    try:
        parts = parse_order_id(int(order_id))
    except Exception:  # parsing needs the id generator, which may need Redis: the panel is extra
        log.warning("could not parse order id %s for the teaching panel", order_id, exc_info=True)
        parts = None
    return PurchaseFacts(
        str(order_id),
        lock_wait_ms,
        fence,
        parts.datetime if parts else None,
        parts.worker_id if parts else None,
        parts.sequence if parts else None,
        replayed,
        queued,
    )


def facts_for_sale(session: SessionBase, sale_id: int) -> PurchaseFacts | None:
    found = recalled_placement(session, sale_id)
    if found is None:
        return None
    return purchase_facts(
        found["order_id"],
        found["lock_wait_ms"],
        found["fence"],
        replayed=found["replayed"],
        queued=found["queued"],
    )


def facts_for_order(session: SessionBase, order: Order) -> PurchaseFacts:
    """The order's own record, completed by the session's note if this browser placed it."""
    found = recalled_placement(session, order.sale_id) or {}
    if found.get("order_id") != str(order.pk):
        found = {}
    return purchase_facts(
        order.pk,
        order.lock_wait_ms if order.lock_wait_ms is not None else found.get("lock_wait_ms"),
        order.fence if order.fence is not None else found.get("fence"),
        queued=bool(getattr(order, "queued", False)),
    )


# --- orders -----------------------------------------------------------------------------------


def orders_of(user: AbstractBaseUser) -> list[Order]:
    """The buyer's orders in the database, newest first (queued redis_atomic ones show up once
    Celery has written them)."""
    return list(Order.objects.filter(buyer=user).select_related("sale__product").order_by("-id"))


def order_actions(order: Order) -> dict[str, bool]:
    """Which buttons to offer; the services still decide (and refuse) on their own."""
    pending = order.status == OrderStatus.PENDING_PAYMENT and not getattr(order, "queued", False)
    return {"can_pay": pending, "can_cancel": pending}


# --- the staff dashboard ----------------------------------------------------------------------


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
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
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
