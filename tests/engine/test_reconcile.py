"""The reconciler on a real Redis: drift is found, repaired under the sale's serialization, and
never overwrites a concurrent reservation; only the elected leader acts."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time

import pytest
from django.contrib.auth import get_user_model

from seckill import order_queue, stock
from seckill.keys import sale_keys
from seckill.leader import LeaderLease
from seckill.models import Sale
from seckill.placement import place_order
from seckill.reconcile import LEADER_NAME, observe, reconcile, repair
from seckill.tasks import reconcile_task
from tests.conftest import ROOT, subprocess_env
from tests.engine.factories import make_sale

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # redis_atomic orders stay queued until a test persists them (a session worker may run).
    pytest.mark.usefixtures("persist_tasks_held"),
]


def buyers(n: int, prefix: str = "r") -> list:
    return [get_user_model().objects.create_user(f"{prefix}{i}") for i in range(n)]


def sale_with_orders(strategy: str, stock_total: int = 10, sold: int = 3, limit: int = 2):
    sale = make_sale(stock=stock_total, strategy=strategy, per_user_limit=limit)
    users = buyers(sold)
    for user in users:
        place_order(sale.pk, user, 1)
    return sale, users


def only(report):
    (result,) = report.sales
    return result


@pytest.mark.parametrize("strategy", ["lock", "lock_fenced", "db_row_lock"])
def test_wrong_stock_bogus_buyer_and_stale_flag_are_repaired(strategy, redis_client):
    sale, users = sale_with_orders(strategy)
    keys = sale_keys(sale.pk)
    assert only(reconcile(sale.pk, settle=0)).outcome == "ok"

    redis_client.set(keys.stock, 99, keepttl=True)
    redis_client.hset(keys.buyers, "424242", 5)
    redis_client.hset(keys.buyers, str(users[0].pk), 2)  # really 1
    redis_client.set(keys.soldout, 1)

    result = only(reconcile(sale.pk, settle=0))
    assert result.outcome == "repaired"
    assert result.drift["stock"] == {"redis": 99, "expected": 7}
    assert result.drift["buyers"] == {
        "424242": {"redis": 5, "expected": None},
        str(users[0].pk): {"redis": 2, "expected": 1},
    }
    assert result.drift["sold_out"] == {"redis": True, "expected": False}
    assert result.fixed == result.drift
    mirror = stock.read_mirror(sale.pk, redis_client)
    assert mirror["stock"] == 7 and not mirror["sold_out"]
    assert mirror["buyers"] == {u.pk: 1 for u in users}
    assert redis_client.ttl(keys.stock) > 0 and redis_client.ttl(keys.buyers) > 0
    assert only(reconcile(sale.pk, settle=0)).outcome == "ok"


def test_missing_mirror_is_loaded_from_the_database(redis_client):
    sale, users = sale_with_orders("lock")
    stock.drop_mirror(sale.pk, redis_client)
    result = only(reconcile(sale.pk, settle=0))
    assert result.drift == {"mirror": "missing"}
    assert result.outcome == "loaded" and result.fixed["stock"] == 7
    mirror = stock.read_mirror(sale.pk, redis_client)
    assert mirror["stock"] == 7 and mirror["buyers"] == {u.pk: 1 for u in users}


def test_sold_out_sale_gets_its_flag_back(redis_client):
    sale, _ = sale_with_orders("lock", stock_total=3, sold=3)
    redis_client.set(sale_keys(sale.pk).stock, 2, keepttl=True)
    redis_client.delete(sale_keys(sale.pk).soldout)
    assert only(reconcile(sale.pk, settle=0)).outcome == "repaired"
    assert stock.read_mirror(sale.pk, redis_client)["stock"] == 0
    assert redis_client.exists(sale_keys(sale.pk).soldout)


def queued_sale(redis_client, sold: int = 3):
    """A redis_atomic sale whose orders are accepted in Redis but not persisted (no worker)."""
    sale, users = sale_with_orders("redis_atomic", sold=sold)
    assert Sale.objects.get(pk=sale.pk).stock_left == 10
    assert len(order_queue.queued_records(sale.pk, redis_client)) == sold
    return sale, users


def test_redis_atomic_expected_stock_accounts_for_queued_units(redis_client):
    sale, users = queued_sale(redis_client)
    keys = sale_keys(sale.pk)
    assert only(reconcile(sale.pk, settle=0)).outcome == "ok"  # 10 - 3 queued == 7

    redis_client.set(keys.stock, 10, keepttl=True)  # what a naive rebuild from the DB gives
    result = only(reconcile(sale.pk, settle=0))
    assert result.outcome == "repaired"
    assert result.drift == {"stock": {"redis": 10, "expected": 7}}
    assert redis_client.get(keys.stock) == b"7"
    # queued buyers count against the limit even though the database does not know them yet
    assert stock.read_mirror(sale.pk, redis_client)["buyers"] == {u.pk: 1 for u in users}
    assert len(order_queue.queued_records(sale.pk, redis_client)) == 3  # queued records untouched


def test_redis_atomic_order_persisted_but_still_queued_counts_once(redis_client):
    sale, _ = queued_sale(redis_client)
    keys = sale_keys(sale.pk)
    order_id, record = next(iter(order_queue.queued_records(sale.pk, redis_client).items()))
    order_queue.persist_batch(sale.pk, [record])  # the database has it now: stock_left 9
    # ...and the worker has not yet removed it from the queued hash
    redis_client.hset(keys.queued, order_id, json.dumps(record))
    seen = observe(sale, redis_client)
    assert seen.persisted == {order_id} and seen.expected_stock == 7
    assert only(reconcile(sale.pk, settle=0)).outcome == "ok"


def test_redis_atomic_missing_stock_is_loaded_net_of_queued_units(redis_client):
    sale, users = queued_sale(redis_client)
    keys = sale_keys(sale.pk)
    redis_client.delete(keys.stock, keys.buyers)
    result = only(reconcile(sale.pk, settle=0))
    assert result.outcome == "loaded" and result.fixed["stock"] == 7
    assert redis_client.get(keys.stock) == b"7"  # not the database's 10: no oversell
    assert stock.read_mirror(sale.pk, redis_client)["buyers"] == {u.pk: 1 for u in users}


def test_repair_never_overwrites_a_reservation_made_after_the_look(redis_client):
    sale, _ = queued_sale(redis_client)
    keys = sale_keys(sale.pk)
    redis_client.set(keys.stock, 10, keepttl=True)
    seen = observe(sale, redis_client)
    place_order(sale.pk, buyers(1, "late")[0], 1)  # a real reservation: stock 9, 4 queued
    assert not repair(sale, seen, redis_client)
    assert redis_client.get(keys.stock) == b"9"
    result = only(reconcile(sale.pk, settle=0))  # the next run repairs from a fresh look
    assert result.drift["stock"] == {"redis": 9, "expected": 6}
    assert redis_client.get(keys.stock) == b"6"


def test_drift_that_moves_between_the_two_looks_is_left_for_the_next_run(redis_client):
    sale, _ = queued_sale(redis_client)
    keys = sale_keys(sale.pk)
    redis_client.set(keys.stock, 10, keepttl=True)
    late = buyers(1, "late")[0]
    buyer = threading.Timer(0.1, place_order, args=(sale.pk, late, 1))
    buyer.start()
    result = only(reconcile(sale.pk, settle=1.0))
    buyer.join()
    assert result.outcome == "unstable" and not result.fixed
    assert redis_client.get(keys.stock) == b"9"  # the reservation stands


def test_recently_ended_sale_is_not_reloaded_and_others_are_not_checked(redis_client):
    from datetime import timedelta

    ended = make_sale(starts_in=timedelta(hours=-1), lasts=timedelta(minutes=30))
    too_old = make_sale(starts_in=timedelta(hours=-3), lasts=timedelta(minutes=30))
    upcoming = make_sale(starts_in=timedelta(hours=1))
    live = make_sale()
    report = reconcile(settle=0)
    assert [s.sale_id for s in report.sales] == [ended.pk, live.pk]
    assert {s.sale_id: s.outcome for s in report.sales} == {ended.pk: "skipped", live.pk: "loaded"}
    assert not redis_client.exists(sale_keys(ended.pk).stock)
    assert not redis_client.exists(sale_keys(upcoming.pk).stock)
    assert not redis_client.exists(sale_keys(too_old.pk).stock)


def test_task_acts_only_on_the_leader(redis_client):
    sale, _ = sale_with_orders("lock")
    keys = sale_keys(sale.pk)
    redis_client.set(keys.stock, 99, keepttl=True)
    other = LeaderLease(redis_client, LEADER_NAME, ttl=30, node_id="other-node")
    assert other.try_acquire()

    assert reconcile_task() == {"leader": False, "holder": "other-node"}
    assert redis_client.get(keys.stock) == b"99"  # the non-leader changed nothing

    other.release()
    outcome = reconcile_task()
    assert outcome["leader"] is True and outcome["term"] > other.current_term() - 1
    assert sale.pk in outcome["fixed"]
    assert redis_client.get(keys.stock) == b"7"
    json.dumps(outcome)  # a Celery result: must be JSON-able


def test_keep_going_false_stops_before_acting(redis_client):
    sale, _ = sale_with_orders("lock")
    redis_client.set(sale_keys(sale.pk).stock, 99, keepttl=True)
    assert reconcile(settle=0, keep_going=lambda: False).sales == []
    assert redis_client.get(sale_keys(sale.pk).stock) == b"99"


def test_worker_registers_the_task():
    """Celery only autodiscovers seckill/tasks.py: the reconciler's task must be defined there."""
    code = (
        "import django; django.setup(); from shop.celery import app; "
        "app.loader.import_default_modules(); print('seckill.reconcile' in app.tasks)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "True", (
        f"seckill/tasks.py must define the seckill.reconcile task\n{out.stderr[-2000:]}"
    )


@pytest.mark.parametrize("strategy", ["redis_atomic", "lock"])
def test_reconciling_during_a_crowd_never_oversells(strategy, redis_client, settings):
    """Buyers, a persisting worker (redis_atomic) and a reconciler run at once, with drift
    injected mid-crowd: the reconciler must repair it without ever undoing a sale."""
    from django.db import close_old_connections, connection

    from seckill.errors import SeckillError

    settings.SECKILL_LOCK_WAIT = 5.0
    total = 12
    sale = make_sale(stock=total, strategy=strategy)
    crowd = buyers(20, "crowd")
    keys = sale_keys(sale.pk)
    stock.load_mirror(sale, redis_client)
    done = threading.Event()
    accepted: list[int] = []
    errors: list[BaseException] = []

    def guarded(fn):
        def run(*args):
            try:
                fn(*args)
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)
            finally:
                connection.close()

        return run

    @guarded
    def buy(people):
        for person in people:
            with contextlib.suppress(SeckillError):
                accepted.append(place_order(sale.pk, person, 1).order.pk)
            time.sleep(0.01)

    @guarded
    def persist_worker():
        while not done.is_set():
            order_queue.drain(sale.pk)
            time.sleep(0.005)

    @guarded
    def reconciler():
        redis_client.decrby(keys.stock, 2)  # drift: two units hidden from buyers
        while not done.is_set():
            reconcile(sale.pk, settle=0.01)
            close_old_connections()

    threads = [threading.Thread(target=buy, args=(crowd[i::4],)) for i in range(4)]
    helpers = [threading.Thread(target=reconciler)]
    if strategy == "redis_atomic":
        helpers.append(threading.Thread(target=persist_worker))
    for t in helpers + threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in helpers:
        t.join()
    assert not errors, errors
    order_queue.drain(sale.pk)

    assert len(accepted) <= total
    reconcile(sale.pk, settle=0)
    report = audit_sale_report(sale)
    assert report["violations"] == [], report
    assert report["units_sold"] == len(accepted)
    assert report["stock_left"] == total - len(accepted)
    assert report["redis"]["stock"] == total - len(accepted)  # the hidden units are back


def audit_sale_report(sale):
    from seckill.audit import audit

    (entry,) = audit(sale.pk, settle=0)["sales"]
    return entry


def test_redis_down_stops_the_run_with_an_error(redis_client, settings):
    from devtools.redis_server import free_port
    from seckill.infrastructure.redis_client import get_redis

    first, second = make_sale(), make_sale()
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    get_redis.cache_clear()
    try:
        report = reconcile(settle=0)
    finally:
        get_redis.cache_clear()
    assert [(s.sale_id, s.outcome) for s in report.sales] == [(first.pk, "error")]
    assert second.pk not in report.drifted
