"""After a run: did the sale keep its promises? Counted independently of the app's own audit.

Runs as ``python -m loadtest.audit …`` with the servers' environment. It first waits for the
redis_atomic hand-off to drain (the sale's ``…:queued`` hash empty), then counts from the
database: units sold against stock, duplicate orders per Idempotency-Key, buyers over the
per-user limit, stock conservation, and *lost orders* — 201/202 answers Locust recorded whose
order id is not in the database. Replays are checked too: one (buyer, key) must always have been
answered with one order id. ``seckill.audit.audit`` is run as well when it exists, and its
verdict is reported beside ours rather than trusted instead of it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def accepted_records(results: Path) -> list[dict]:
    """Every 2xx order answer the Locust processes wrote."""
    records = []
    for path in sorted(results.glob("accepted-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records


def nodes_seen(records: list[dict]) -> dict[str, dict[str, Any]]:
    """Per web node (several nodes on one sale): its accepted answers, and the worker ids in
    their order ids — each node's processes lease their own, so no id appears under two."""
    from idgen import DEFAULT_LAYOUT

    nodes: dict[str, dict[str, Any]] = {}
    for record in records:
        if "node" not in record:
            continue
        node = nodes.setdefault(record["node"], {"accepted": 0, "worker_ids": set()})
        node["accepted"] += 1
        node["worker_ids"].add(DEFAULT_LAYOUT.parse(int(record["order_id"])).worker_id)
    return {
        name: {"accepted": node["accepted"], "worker_ids": sorted(node["worker_ids"])}
        for name, node in sorted(nodes.items())
    }


def wait_for_drain(sale_id: int, timeout: float) -> int:
    """Wait until no accepted order of the sale is still queued in Redis; returns those left."""
    from seckill.order_queue import queued_records

    deadline = time.monotonic() + timeout
    while True:
        left = len(queued_records(sale_id))
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.25)


def wait_for_quiet(sale_id: int, timeout: float, quiet: float = 2.0) -> bool:
    """Wait until the sale's figures stop moving: when Locust stops, requests it already sent
    may still sit in the server's backlog and commit seconds later. False on timeout."""
    from seckill.models import Order, Sale

    def figures() -> tuple:
        return (
            Sale.objects.values_list("stock_left", flat=True).get(pk=sale_id),
            Order.objects.filter(sale_id=sale_id).count(),
        )

    deadline = time.monotonic() + timeout
    last, since = figures(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = figures()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return True
    return False


@contextmanager
def snapshot() -> Iterator[None]:
    """One consistent view of the database for all counts (REPEATABLE READ on PostgreSQL;
    a SQLite transaction is a snapshot already)."""
    from django.db import connection, transaction

    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def project_audit(sale_id: int) -> dict[str, Any]:
    """The app's own audit (``seckill.audit``), guarded: it may not exist yet, or may fail."""
    try:
        from seckill.audit import audit
    except ImportError as exc:
        return {"available": False, "detail": f"seckill.audit not importable: {exc}"}
    try:
        result = audit(sale_id=sale_id)
    except Exception as exc:  # report, never crash the verdict
        return {"available": True, "ok": None, "detail": f"{type(exc).__name__}: {exc}"}
    sale = next((s for s in result.get("sales", []) if s.get("sale_id") == sale_id), None) or {}
    codes = sorted({v.get("code", "?") for v in sale.get("violations", [])})
    unbounded = [
        key
        for warning in sale.get("warnings", [])
        if warning.get("code") == "key_without_ttl"
        for key in warning.get("keys", [])
    ]
    return {
        "available": True,
        "ok": bool(result.get("ok")),
        "violations": codes,
        "keys_without_ttl": unbounded,
        "sale": sale,
    }


def count(sale_id: int, records: list[dict]) -> dict[str, Any]:
    """The independent counts, from the database and Locust's record of accepted answers."""
    from django.db.models import Count, Sum

    from seckill.models import LIVE_ORDER_STATUSES, Order, Sale
    from seckill.stock import read_mirror

    sale = Sale.objects.get(pk=sale_id)
    orders = Order.objects.filter(sale_id=sale_id)
    live = orders.filter(status__in=LIVE_ORDER_STATUSES)
    units_sold = live.aggregate(units=Sum("quantity"))["units"] or 0
    duplicate_rows = (
        orders.exclude(idempotency_key="")
        .values("buyer_id", "idempotency_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    over_limit = (
        live.values("buyer_id")
        .annotate(units=Sum("quantity"))
        .filter(units__gt=sale.per_user_limit)
    )
    ids_by_intent: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        ids_by_intent[(record["token"], record["key"])].add(record["order_id"])
    answered = {int(r["order_id"]) for r in records if r["status"] in (201, 202)}
    in_db = set(orders.filter(pk__in=answered).values_list("pk", flat=True))
    mirror = read_mirror(sale_id)
    batched = orders.exclude(batch_size=None)
    lock_holds = batched.values("fence").distinct().count()
    return {
        "sale_id": sale_id,
        "strategy": sale.strategy,
        "stock_total": sale.stock_total,
        "stock_left_db": sale.stock_left,
        "stock_left_redis": mirror.get("stock"),
        "orders": orders.count(),
        "units_sold": units_sold,
        "oversold": max(0, units_sold - sale.stock_total),
        "sold_exactly_stock": units_sold == sale.stock_total,
        "conserved": sale.stock_left + units_sold == sale.stock_total,
        "duplicates": sum(row["n"] - 1 for row in duplicate_rows)
        + sum(len(ids) - 1 for ids in ids_by_intent.values()),
        "limit_violations": len(over_limit),
        "accepted_answers": len(answered),
        "lost_orders": len(answered - in_db),
        # Group commit (lock, lock_fenced): orders per lock hold that wrote any.
        "mean_batch_orders": round(batched.count() / lock_holds, 2) if lock_holds else None,
    }


def is_clean(verdict: dict[str, Any]) -> bool:
    """The run's verdict: our own counts, settled and drained, and no sale key left forever."""
    return (
        verdict["oversold"] == 0
        and verdict["duplicates"] == 0
        and verdict["limit_violations"] == 0
        and verdict["lost_orders"] == 0
        and verdict["conserved"]
        and verdict["queued_left"] == 0
        and verdict["settled"]
        and not verdict["keys_without_ttl"]
    )


def audit_sale(sale_id: int, results: Path, drain_timeout: float = 60.0) -> dict[str, Any]:
    """Drain, count, ask the project's audit.

    ``clean`` is the verdict of our own counts; the project's audit is reported beside it
    (``project_audit``), so a finding of either is visible and neither hides the other.
    """
    quiet = wait_for_quiet(sale_id, drain_timeout)
    left = wait_for_drain(sale_id, drain_timeout)
    records = accepted_records(results)
    with snapshot():
        verdict = count(sale_id, records)
    verdict["queued_left"] = left
    verdict["settled"] = quiet
    verdict["nodes"] = nodes_seen(records)
    verdict["project_audit"] = project_audit(sale_id)
    # A sale key that never expires is a leak on a shared Redis: it fails the run too.
    verdict["keys_without_ttl"] = verdict["project_audit"].get("keys_without_ttl", [])
    verdict["clean"] = is_clean(verdict)
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sale", type=int, required=True)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loadtest.settings")
    import django

    django.setup()
    verdict = audit_sale(args.sale, args.results, args.drain_timeout)
    args.out.write_text(json.dumps(verdict, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
