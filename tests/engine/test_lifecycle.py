"""Pay, cancel, expiry and redis_atomic persistence: stock is conserved through all of them."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from seckill import lifecycle, queue, stock, tasks
from seckill.errors import InvalidState, NotFound
from seckill.models import Order, OrderStatus, Sale
from seckill.placement import place_order
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)


def buyer(name: str = "buyer"):
    return get_user_model().objects.create_user(name)


def overdue(order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(pay_by=timezone.now() - timedelta(seconds=1))


@pytest.mark.parametrize("strategy", ["lock", "lock_fenced", "db_row_lock", "redis_atomic"])
def test_expiry_returns_units_to_db_and_redis(strategy, redis_client, eager_celery):
    sale = make_sale(stock=2, strategy=strategy, per_user_limit=2)
    user = buyer()
    order = place_order(sale.pk, user, 2).order
    assert stock.is_sold_out(sale)
    overdue(order)
    assert lifecycle.expire_due_orders() == 1
    assert lifecycle.expire_due_orders() == 0  # at most once
    order.refresh_from_db()
    assert order.status == OrderStatus.EXPIRED
    assert Sale.objects.get(pk=sale.pk).stock_left == 2
    mirror = stock.read_mirror(sale.pk)
    assert mirror["stock"] == 2 and not mirror["sold_out"] and user.pk not in mirror["buyers"]
    # The units can be sold again, and the limit counts only live orders.
    assert place_order(sale.pk, user, 2).created


def test_pay_after_expiry_is_refused_and_expires(redis_client):
    sale = make_sale(stock=1)
    user = buyer()
    order = place_order(sale.pk, user, 1).order
    overdue(order)
    with pytest.raises(InvalidState, match="payment window has closed"):
        lifecycle.pay_order(order.pk, user)
    order.refresh_from_db()
    assert order.status == OrderStatus.EXPIRED
    assert Sale.objects.get(pk=sale.pk).stock_left == 1


def test_pay_is_idempotent_and_paid_orders_do_not_expire(redis_client):
    sale = make_sale(stock=1)
    user = buyer()
    order = place_order(sale.pk, user, 1).order
    assert lifecycle.pay_order(order.pk, user).status == OrderStatus.PAID
    assert lifecycle.pay_order(order.pk, user).status == OrderStatus.PAID
    overdue(order)
    assert lifecycle.expire_due_orders() == 0
    with pytest.raises(InvalidState):
        lifecycle.cancel_order(order.pk, user)
    assert Sale.objects.get(pk=sale.pk).stock_left == 0


def test_orders_of_others_are_not_found(redis_client):
    sale = make_sale(stock=1)
    order = place_order(sale.pk, buyer("owner"), 1).order
    with pytest.raises(NotFound):
        lifecycle.pay_order(order.pk, buyer("thief"))


def test_persist_task_is_idempotent(redis_client):
    """A redelivered persist task (acks_late after a worker crash) writes the order once."""
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=5)
    user = buyer()
    placement = place_order(sale.pk, user, 2)  # broker not eager: the task waits in Redis
    assert placement.queued and getattr(placement.order, "queued", False)
    record = queue.record_of(placement.order)
    first = tasks.persist_order.apply(args=(record,)).result
    again = tasks.persist_order.apply(args=(record,)).result
    assert first == again == str(placement.order.id)
    assert Order.objects.filter(sale=sale).count() == 1
    assert Sale.objects.get(pk=sale.pk).stock_left == 3
    assert stock.queued_records(sale.pk) == {}


def test_sweep_persists_orders_whose_task_was_lost(redis_client, monkeypatch):
    sale = make_sale(stock=5, strategy="redis_atomic")
    monkeypatch.setattr(queue, "enqueue_persist", lambda order: None)  # the message is lost
    placement = place_order(sale.pk, buyer(), 1)
    assert lifecycle.persist_stale_queued(older_than_seconds=60) == 0  # too young to touch
    assert lifecycle.persist_stale_queued(older_than_seconds=0) == 1
    assert Order.objects.filter(pk=placement.order.id).exists()
    assert Sale.objects.get(pk=sale.pk).stock_left == 4


def test_real_worker_persists_redis_atomic_orders(redis_client, celery_worker):
    """Not eager: the order travels through the broker to a worker process and back."""
    sale = make_sale(stock=3, strategy="redis_atomic", per_user_limit=1)
    placements = [place_order(sale.pk, buyer(f"w{i}"), 1) for i in range(3)]
    assert all(p.queued for p in placements)
    deadline = time.monotonic() + 30
    # Written to the database, then dropped from the queued hash: wait for both.
    while Order.objects.filter(sale=sale).count() < 3 or stock.queued_records(sale.pk):
        assert time.monotonic() < deadline, "the worker never persisted the orders"
        time.sleep(0.1)
    sale.refresh_from_db()
    assert sale.stock_left == 0
    assert queue.find_order(placements[0].order.id).pk == placements[0].order.id
