"""The audit: check design.md's invariants 1-5 for each sale, against the database and Redis.

Used by ``manage.py seckill_audit``, the load-test report and the tests. It only reads. Where
the two stores are compared, Redis is read before the order rows (as the reconciler does), and
a mismatch counts only if a second look ``settle`` seconds later still shows it: a database
commit whose Redis half is in flight is not a violation, a mismatch that stays is.

Conservation, precisely: the database holds what Celery has persisted, so in the database
``stock_left + live units == stock_total`` always; redis_atomic orders accepted in Redis but
not yet persisted ("queued") are in neither term there, and appear in Redis:
``Redis stock + queued units == stock_left``. Invariant 1 counts them as sold:
``live units + queued units <= stock_total``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from seckill.ids import parse_order_id
from seckill.infrastructure.redis_client import get_redis
from seckill.keys import sale_keys
from seckill.models import Order, Sale, Strategy
from seckill.reconcile import Observation, observe
from seckill.stock import units_by_buyer

SETTLE = 0.2
ID_TOLERANCE = timedelta(milliseconds=5)


def queued_age_limit() -> float:
    """A queued order older than this was missed by its task *and* by two sweeps."""
    return 2 * float(settings.SECKILL_EXPIRY_SWEEP_INTERVAL) + 30


def problem(invariant: int, code: str, message: str, **detail: Any) -> dict:
    return {"invariant": invariant, "code": code, "message": message, **detail}


def id_inversions(rows: Iterable[tuple[int, datetime]], tolerance: timedelta) -> int:
    """Orders (by created_at) whose id is below that of an order created > tolerance earlier.

    Ids come from several processes' clocks and redis_atomic orders are written after they are
    accepted, so small inversions are normal; a generator running backwards makes most of them.
    """
    ordered = sorted(rows, key=lambda row: row[1])
    inversions, highest, behind = 0, None, 0
    for order_id, created in ordered:
        while behind < len(ordered) and ordered[behind][1] < created - tolerance:
            earlier_id = ordered[behind][0]
            highest = earlier_id if highest is None else max(highest, earlier_id)
            behind += 1
        if highest is not None and order_id < highest:
            inversions += 1
    return inversions


def settled_observation(sale: Sale, client: redis.Redis, settle: float) -> Observation:
    """A look at Redis and the database whose drift, if any, survived a second look."""
    with transaction.atomic():
        seen = observe(sale, client)
    if seen.drift() and settle > 0:
        time.sleep(settle)
        with transaction.atomic():
            seen = observe(sale, client)
    return seen


def check_redis(
    sale: Sale, seen: Observation, client: redis.Redis, out: dict, max_age: float
) -> None:
    """Invariant 2 in Redis, plus the mirror's health (warnings) and stale queued orders (5)."""
    drift = seen.drift()
    out["redis"] = {
        "stock": seen.stock_value,
        "expected_stock": seen.expected_stock,
        "sold_out": seen.sold_out,
        "buyers": len(seen.redis_buyers),
        "queued": len(seen.queued),
        "drift": drift,
    }
    if "stock" in drift:
        out["violations"].append(
            problem(
                2,
                "redis_stock_mismatch",
                f"Redis stock {drift['stock']['redis']} + queued {seen.queued_units} "
                f"!= database stock_left {seen.stock_left}",
            )
        )
    if "buyers" in drift:
        out["warnings"].append(
            problem(
                3,
                "redis_buyers_mismatch",
                f"{len(drift['buyers'])} buyer entries in Redis differ from the orders",
            )
        )
    if "sold_out" in drift:
        out["warnings"].append(
            problem(2, "stale_sold_out_flag", "Redis says sold out but stock is left")
        )
    now = time.time()
    stale = [
        str(order_id)
        for order_id in seen.unpersisted
        if now - parse_order_id(order_id).timestamp_ms / 1000 > max_age
    ]
    if stale:
        out["warnings"].append(
            problem(
                5,
                "queued_order_stale",
                f"{len(stale)} accepted orders still not in the database after {max_age:.0f}s "
                "(lost task and sweep?)",
                order_ids=stale[:20],
            )
        )
    keys = [k for k in sale_keys(sale.pk).all() if k != sale_keys(sale.pk).lock]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.ttl(key)
    unbounded = [key for key, ttl in zip(keys, pipe.execute(), strict=True) if ttl == -1]
    if unbounded:
        out["warnings"].append(problem(0, "key_without_ttl", "keys never expire", keys=unbounded))


def audit_sale(
    sale: Sale,
    client: redis.Redis | None,
    *,
    settle: float = SETTLE,
    queued_max_age: float | None = None,
    id_tolerance: timedelta = ID_TOLERANCE,
) -> dict:
    """Every invariant for one sale; see :func:`audit` for the shape."""
    orders = Order.objects.filter(sale_id=sale.pk)
    out: dict[str, Any] = {
        "sale_id": sale.pk,
        "strategy": sale.strategy,
        "status": sale.status,
        "stock_total": sale.stock_total,
        "stock_left": sale.stock_left,
        "per_user_limit": sale.per_user_limit,
        "violations": [],
        "warnings": [],
        "redis": {},
    }
    seen = None
    if client is not None:
        try:
            seen = settled_observation(sale, client, settle)
        except redis.RedisError as exc:
            out["warnings"].append(problem(0, "redis_unavailable", f"Redis not checked: {exc}"))
    if seen is not None:
        # The same snapshot as the Redis figures, so the comparisons below line up.
        stock_left, by_buyer = seen.stock_left, Counter(seen.db_buyers)
        queued = seen.unpersisted
    else:
        stock_left = Sale.objects.values_list("stock_left", flat=True).get(pk=sale.pk)
        by_buyer = Counter(units_by_buyer(sale.pk))
        queued = {}
    live_units = sum(by_buyer.values())
    queued_units = sum(units for _, units in queued.values())
    sold = live_units + queued_units
    out.update(
        stock_left=stock_left,
        units_sold=sold,
        live_units=live_units,
        queued_units=queued_units,
        oversold=max(0, sold - sale.stock_total),
    )
    violations = out["violations"]

    # 1. Never more than the stock; a sold-out sale sold exactly its stock.
    if sold > sale.stock_total:
        violations.append(
            problem(
                1,
                "oversold",
                f"{sold} units sold of {sale.stock_total}",
                oversold=out["oversold"],
            )
        )
    if stock_left - queued_units <= 0 and sold != sale.stock_total:
        violations.append(
            problem(
                1,
                "sold_out_mismatch",
                f"sold out, yet {sold} units sold of {sale.stock_total}",
            )
        )
    # 2. Conservation in the database.
    if stock_left < 0:
        violations.append(problem(2, "negative_stock", f"stock_left is {stock_left}"))
    if stock_left + live_units != sale.stock_total:
        violations.append(
            problem(
                2,
                "not_conserved",
                f"stock_left {stock_left} + live units {live_units}"
                f" != stock_total {sale.stock_total}",
            )
        )
    if seen is not None:
        check_redis(sale, seen, client, out, queued_max_age or queued_age_limit())
    # 3. Per-buyer limit (queued units count: Redis already granted them).
    for buyer, units in queued.values():
        by_buyer[buyer] += units
    over = {str(b): u for b, u in by_buyer.items() if u > sale.per_user_limit}
    if over:
        violations.append(
            problem(
                3,
                "limit_exceeded",
                f"{len(over)} buyers over the limit of {sale.per_user_limit}",
                buyers=over,
            )
        )
    # 4. Ids: unique (primary key, checked anyway) and trending upward in time.
    rows = list(orders.values_list("id", "created_at"))
    inversions = id_inversions(rows, id_tolerance)
    out["ids"] = {
        "orders": len(rows),
        "inversions": inversions,
        "tolerance_ms": id_tolerance.total_seconds() * 1000,
    }
    if len({order_id for order_id, _ in rows}) != len(rows):
        violations.append(problem(4, "duplicate_ids", "order ids repeat"))
    # redis_atomic rows are created when Celery persists them, in no particular order: their
    # created_at says nothing about when the id was issued, so inversions are only noted.
    gross = inversions >= 3 and 2 * inversions > len(rows)
    if gross and sale.strategy != Strategy.REDIS_ATOMIC:
        violations.append(
            problem(
                4,
                "ids_not_increasing",
                f"{inversions} of {len(rows)} orders have a smaller id than an earlier order",
            )
        )
    elif inversions:
        out["warnings"].append(problem(4, "id_inversions", f"{inversions} inversions"))
    # 5. Every order refers to a buyer that exists (the sale exists: we came from it).
    users = get_user_model().objects.values("pk")
    missing_buyers = orders.exclude(buyer_id__in=users).count()
    queued_buyers = {buyer for buyer, _ in queued.values()}
    known = set(users.filter(pk__in=queued_buyers).values_list("pk", flat=True))
    missing_buyers += sum(1 for buyer, _ in queued.values() if buyer not in known)
    if missing_buyers:
        violations.append(problem(5, "missing_buyer", f"{missing_buyers} orders without a buyer"))
    return out


def global_checks() -> list[dict]:
    """What no single sale sees: orders of missing sales, repeated idempotency keys (3).

    Keys are per sale (a buyer may use the same key on two sales): a repeat is the same key twice
    for one (sale, buyer), which the database's unique constraint should already have refused."""
    found = []
    orphans = Order.objects.exclude(sale_id__in=Sale.objects.values("pk")).count()
    if orphans:
        found.append(problem(5, "missing_sale", f"{orphans} orders refer to no sale"))
    repeated = (
        Order.objects.exclude(idempotency_key="")
        .values("sale_id", "buyer_id", "idempotency_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    if repeated.exists():
        found.append(
            problem(
                3,
                "idempotency_key_reused",
                f"{repeated.count()} (sale, buyer, key) triples have >1 order",
            )
        )
    return found


def audit(
    sale_id: int | None = None,
    *,
    client: redis.Redis | None = None,
    use_redis: bool = True,
    settle: float = SETTLE,
    queued_max_age: float | None = None,
    id_tolerance: timedelta = ID_TOLERANCE,
) -> dict:
    """Check invariants 1-5 for one sale or all; JSON-able.

    ``{"ok", "checked_at", "violations" (not tied to one sale), "sales": [{"sale_id",
    "strategy", "status", "stock_total", "stock_left", "units_sold", "live_units",
    "queued_units", "oversold", "violations", "warnings", "redis", "ids"}]}``. ``ok`` is False
    when any violation is found; warnings never make it False.
    """
    if use_redis and client is None:
        client = get_redis()
    sales = Sale.objects.filter(pk=sale_id) if sale_id is not None else Sale.objects.order_by("pk")
    report = {
        "ok": True,
        "checked_at": timezone.now().isoformat(),
        "violations": global_checks(),
        "sales": [],
    }
    if sale_id is not None and not sales.exists():
        report["violations"].append(problem(0, "no_such_sale", f"no sale {sale_id}"))
    for sale in sales:
        report["sales"].append(
            audit_sale(
                sale,
                client if use_redis else None,
                settle=settle,
                queued_max_age=queued_max_age,
                id_tolerance=id_tolerance,
            )
        )
    report["ok"] = not report["violations"] and not any(s["violations"] for s in report["sales"])
    return report
