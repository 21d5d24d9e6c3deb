"""The audit on real data: clean sales pass, each kind of corruption is reported, and the
management command prints JSON and exits 1 on a violation."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from seckill import order_queue, stock
from seckill.audit import audit, id_inversions
from seckill.keys import sale_keys
from seckill.models import Order, Sale
from seckill.placement import place_order
from tests.conftest import ROOT, subprocess_env
from tests.engine.factories import make_sale

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # redis_atomic orders stay queued until a test persists them (a session worker may run).
    pytest.mark.usefixtures("persist_tasks_held"),
]


def users(n: int, prefix: str = "a") -> list:
    return [get_user_model().objects.create_user(f"{prefix}{i}") for i in range(n)]


def sold_sale(strategy: str = "lock", stock_total: int = 5, buyers: int = 3):
    sale = make_sale(stock=stock_total, strategy=strategy, per_user_limit=1)
    people = users(buyers)
    for person in people:
        place_order(sale.pk, person, 1)
    return sale, people


def sale_report(report: dict, sale: Sale) -> dict:
    (entry,) = [s for s in report["sales"] if s["sale_id"] == sale.pk]
    return entry


def codes(entry: dict, kind: str = "violations") -> set[str]:
    return {p["code"] for p in entry[kind]}


def extra_order(sale: Sale, buyer, quantity: int = 1) -> Order:
    """An order row written behind the engine's back."""
    order = Order.objects.create(
        id=max(Order.objects.values_list("id", flat=True), default=0) + 1,
        sale=sale,
        buyer=buyer,
        quantity=quantity,
        unit_price=Decimal("1.00"),
        strategy=sale.strategy,
        pay_by=timezone.now() + timedelta(minutes=5),
    )
    return order


@pytest.mark.parametrize("strategy", ["lock", "db_row_lock", "redis_atomic"])
def test_clean_sale_is_ok(strategy, redis_client):
    sale, _ = sold_sale(strategy)
    report = audit(settle=0)
    assert report["ok"], report
    entry = sale_report(report, sale)
    assert entry["units_sold"] == 3 and entry["oversold"] == 0 and entry["violations"] == []
    if strategy == "redis_atomic":  # not persisted (no worker): queued, Redis already deducted
        assert entry["queued_units"] == 3 and entry["stock_left"] == 5
    else:
        assert entry["stock_left"] == 2
    assert entry["redis"]["stock"] == 2 and entry["redis"]["drift"] == {}
    json.dumps(report)


def test_one_idempotency_key_on_two_sales_is_no_violation(redis_client):
    """Keys are per sale: the same key for one buyer on two sales is two distinct purchases."""
    (buyer,) = users(1)
    first, second = make_sale(stock=3), make_sale(stock=3, strategy="db_row_lock")
    place_order(first.pk, buyer, 1, "same-key")
    place_order(second.pk, buyer, 1, "same-key")
    report = audit()
    assert report["violations"] == [] and report["ok"], report


def test_sold_out_sale_is_ok_and_persisting_queued_orders_keeps_it_ok(redis_client):
    sale, _ = sold_sale("redis_atomic", stock_total=3, buyers=3)
    assert audit(sale.pk, settle=0)["ok"]
    assert order_queue.drain(sale.pk) == 3
    report = audit(sale.pk, settle=0)
    assert report["ok"], report
    entry = sale_report(report, sale)
    assert entry["stock_left"] == 0 and entry["live_units"] == 3 and entry["queued_units"] == 0


def test_extra_order_beyond_stock_is_an_oversell(redis_client):
    sale, people = sold_sale(stock_total=3, buyers=3)
    extra_order(sale, users(1, "intruder")[0])
    report = audit(settle=0)
    assert not report["ok"]
    entry = sale_report(report, sale)
    assert entry["oversold"] == 1 and entry["units_sold"] == 4
    assert {"oversold", "sold_out_mismatch", "not_conserved"} <= codes(entry)
    assert all(p["invariant"] in (1, 2) for p in entry["violations"])


def test_changed_stock_left_breaks_conservation_in_db_and_redis(redis_client):
    sale, _ = sold_sale()
    Sale.objects.filter(pk=sale.pk).update(stock_left=4)
    entry = sale_report(audit(sale.pk, settle=0), sale)
    assert codes(entry) == {"not_conserved", "redis_stock_mismatch"}
    Sale.objects.filter(pk=sale.pk).update(stock_left=-1)
    assert "negative_stock" in codes(sale_report(audit(sale.pk, settle=0), sale))


def test_redis_drift_is_a_violation_only_for_stock(redis_client):
    sale, people = sold_sale()
    keys = sale_keys(sale.pk)
    redis_client.hset(keys.buyers, "999999", 1)
    entry = sale_report(audit(sale.pk, settle=0), sale)
    assert entry["violations"] == [] and "redis_buyers_mismatch" in codes(entry, "warnings")
    redis_client.set(keys.stock, 4, keepttl=True)
    report = audit(sale.pk, settle=0.05)
    assert not report["ok"]
    assert codes(sale_report(report, sale)) == {"redis_stock_mismatch"}


def test_buyer_over_the_limit(redis_client):
    sale, people = sold_sale()
    extra_order(sale, people[0])
    Sale.objects.filter(pk=sale.pk).update(stock_left=1)  # conserved, but one buyer has two
    stock.drop_mirror(sale.pk, redis_client)
    entry = sale_report(audit(sale.pk, settle=0), sale)
    assert codes(entry) == {"limit_exceeded"}
    assert entry["violations"][0]["buyers"] == {str(people[0].pk): 2}
    assert entry["redis"]["stock"] is None  # no mirror: nothing to compare


def test_stale_queued_order_is_a_warning(redis_client):
    sale, _ = sold_sale("redis_atomic")
    report = audit(sale.pk, settle=0, queued_max_age=-1)
    assert report["ok"]
    assert "queued_order_stale" in codes(sale_report(report, sale), "warnings")


def test_key_without_ttl_is_a_warning(redis_client):
    sale, _ = sold_sale()
    redis_client.persist(sale_keys(sale.pk).stock)
    entry = sale_report(audit(sale.pk, settle=0), sale)
    assert "key_without_ttl" in codes(entry, "warnings")


def test_id_inversions():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ms = timedelta(milliseconds=1)
    upward = [(i, t0 + i * 10 * ms) for i in range(1, 20)]
    assert id_inversions(upward, 5 * ms) == 0
    jitter = [(2, t0), (1, t0 + 2 * ms), (3, t0 + 20 * ms)]  # within tolerance
    assert id_inversions(jitter, 5 * ms) == 0
    assert id_inversions([(5, t0), (1, t0 + 100 * ms), (6, t0 + 200 * ms)], 5 * ms) == 1
    backwards = [(100 - i, t0 + i * 10 * ms) for i in range(20)]
    assert id_inversions(backwards, 5 * ms) == 19


@pytest.mark.parametrize("strategy", ["lock", "redis_atomic"])
def test_ids_running_backwards_are_a_violation(strategy, redis_client):
    """Except for redis_atomic, whose rows are written whenever Celery persists them."""
    sale = make_sale(stock=10, strategy=strategy)
    buyer = users(1)[0]
    for i in range(6):
        order = extra_order(sale, buyer)
        Order.objects.filter(pk=order.pk).update(
            id=1000 - i, created_at=timezone.now() + timedelta(seconds=i)
        )
    entry = sale_report(audit(sale.pk, use_redis=False), sale)
    assert entry["ids"]["inversions"] == 5
    if strategy == "redis_atomic":
        assert "ids_not_increasing" not in codes(entry)
        assert "id_inversions" in codes(entry, "warnings")
    else:
        assert "ids_not_increasing" in codes(entry)


def test_command_prints_json_and_exits_zero_when_clean(redis_client):
    sale, _ = sold_sale()
    out = StringIO()
    call_command("seckill_audit", "--sale", str(sale.pk), stdout=out)
    report = json.loads(out.getvalue())
    assert report["ok"] and [s["sale_id"] for s in report["sales"]] == [sale.pk]


def test_command_exits_1_with_violations_in_a_real_process(redis_client):
    clean, _ = sold_sale()
    broken = make_sale(stock=2)
    Sale.objects.filter(pk=broken.pk).update(stock_left=5)

    bad = subprocess.run(
        [sys.executable, "manage.py", "seckill_audit", "--sale", str(broken.pk)],
        cwd=ROOT,
        env=subprocess_env(DJANGO_SETTINGS_MODULE="tests.settings"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1, bad.stderr
    report = json.loads(bad.stdout)
    assert report["ok"] is False and report["sales"][0]["sale_id"] == broken.pk
    assert "not_conserved" in codes(report["sales"][0])
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("seckill_audit", stdout=out)
    assert {s["sale_id"] for s in json.loads(out.getvalue())["sales"]} == {clean.pk, broken.pk}


def test_command_unknown_sale_is_a_failure(redis_client):
    with pytest.raises(CommandError):
        call_command("seckill_audit", "--sale", "987654", stdout=StringIO())
