"""Concurrency proof: a crowd of real threads (and real processes) buys from one sale.

Safe strategies sell exactly the stock, hold the per-buyer limit and answer replayed
Idempotency-Keys with the first order. The teaching strategies, given the same crowd and a
small pause inside the critical section, oversell - asserted too, so these tests can fail.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Sum

from seckill.models import LIVE_ORDER_STATUSES, Order, Sale
from tests.conftest import subprocess_env
from tests.engine.crowd import Buyer, Outcome, run_processes, run_threads
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)

SAFE = ["lock", "lock_fenced", "redis_atomic", "db_row_lock"]
CROWD, USERS, STOCK = 200, 150, 50
REPLAYS = 25  # threads that replay another thread's Idempotency-Key (same user)


def make_crowd(crowd: int = CROWD, users: int = USERS, replays: int = REPLAYS) -> list[Buyer]:
    """200 buyers over 150 users: 25 replay a key, 25 try a second order (limit is 1)."""
    accounts = get_user_model().objects.bulk_create(
        get_user_model()(username=f"crowd-{i}") for i in range(users)
    )
    buyers = []
    for i in range(crowd):
        user = accounts[i % users]
        if i < users:
            key = f"k-{i}"
        elif i < users + replays:
            key = f"k-{i - users}"
        else:
            key = f"second-{i}"
        buyers.append(Buyer(user.pk, key))
    return buyers


def live_units(sale: Sale) -> int:
    units = Order.objects.filter(sale=sale, status__in=LIVE_ORDER_STATUSES).aggregate(
        u=Sum("quantity")
    )["u"]
    return units or 0


def wait_until_persisted(order_ids: set[int], timeout: float = 60) -> None:
    """redis_atomic answers before the database write: wait for the worker to catch up."""
    deadline = time.monotonic() + timeout
    while Order.objects.filter(pk__in=order_ids).count() < len(order_ids):
        assert time.monotonic() < deadline, "accepted orders never reached the database"
        time.sleep(0.1)


def assert_sold_exactly_the_stock(sale: Sale, outcomes: list[Outcome]) -> None:
    codes = Counter(o.code for o in outcomes)
    assert set(codes) <= {"ok", "sold_out", "limit_reached"}, codes
    accepted = {o.order_id for o in outcomes if o.code == "ok"}
    wait_until_persisted(accepted)
    sale.refresh_from_db()
    assert live_units(sale) == sale.stock_total
    assert sale.stock_left == 0
    per_user = Counter(Order.objects.filter(sale=sale).values_list("buyer_id", flat=True))
    assert max(per_user.values()) == 1, "a buyer got past the per-user limit"
    # Replayed keys got the first order back, never a second one.
    by_key: dict[tuple[int, str], set[int]] = {}
    for o in outcomes:
        if o.code == "ok":
            by_key.setdefault((o.user_id, o.key), set()).add(o.order_id)
    assert all(len(ids) == 1 for ids in by_key.values())
    assert Order.objects.filter(sale=sale).count() == len(accepted) == sale.stock_total


@pytest.mark.parametrize("strategy", SAFE)
def test_thread_crowd_never_oversells(strategy, redis_client, eager_celery):
    """Persistence runs inline: the Lua script (redis_atomic) is what is under test here."""
    sale = make_sale(stock=STOCK, strategy=strategy, per_user_limit=1)
    outcomes = run_threads(sale.pk, make_crowd())
    assert_sold_exactly_the_stock(sale, outcomes)


@pytest.mark.parametrize("strategy", SAFE)
def test_process_crowd_never_oversells(strategy, redis_client, celery_worker):
    """Four OS processes of 50 threads each, released at one instant, a real Celery worker."""
    sale = make_sale(stock=STOCK, strategy=strategy, per_user_limit=1)
    outcomes = run_processes(sale.pk, make_crowd(), subprocess_env())
    assert len(outcomes) == CROWD
    assert_sold_exactly_the_stock(sale, outcomes)


def thread_crowd_units(strategy: str, stock: int = 5, buyers: int = 30) -> tuple[int, Sale]:
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"t-{i}") for i in range(buyers)
    )
    sale = make_sale(stock=stock, strategy=strategy, per_user_limit=1)
    run_threads(sale.pk, [Buyer(u.pk, "") for u in users])
    return live_units(sale), sale


def test_unsafe_oversells(redis_client, settings):
    """Read, pause, write: every thread reads the same stock and sells from it."""
    settings.SECKILL_CRITICAL_SECTION_DELAY = 0.05
    units, sale = thread_crowd_units("unsafe")
    assert units > sale.stock_total, "unsafe did not oversell: the teaching claim is broken"


def test_naive_lock_oversells_when_a_holder_outlives_its_lease(redis_client, settings):
    """SETNX/EXPIRE/DEL: the lease runs out mid-section, a second buyer walks in, and the
    first one's DEL then frees the second one's lock for a third."""
    settings.SECKILL_NAIVE_LOCK_TTL = 0.05
    settings.SECKILL_CRITICAL_SECTION_DELAY = 0.15
    settings.SECKILL_LOCK_WAIT = 5.0
    units, sale = thread_crowd_units("naive_lock")
    assert units > sale.stock_total, "naive_lock did not oversell: the teaching claim is broken"


@pytest.mark.parametrize("strategy", ["lock", "lock_fenced"])
def test_safe_lock_survives_the_same_slow_section(strategy, redis_client, settings):
    """The same fault as above (section longer than the lease): the watchdog renews the lease
    while the holder is alive, so nobody else gets in."""
    settings.SECKILL_LOCK_TTL = 0.15
    settings.SECKILL_CRITICAL_SECTION_DELAY = 0.2
    settings.SECKILL_LOCK_WAIT = 10.0
    units, sale = thread_crowd_units(strategy, stock=3, buyers=8)
    assert units == sale.stock_total
    sale.refresh_from_db()
    assert sale.stock_left == 0
