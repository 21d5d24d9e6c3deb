"""Pay, cancel, expiry and redis_atomic persistence: stock is conserved through all of them."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from seckill import lifecycle, order_queue, stock, tasks
from seckill.errors import InvalidState, NotFound
from seckill.keys import sale_keys
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


def test_drain_task_is_idempotent(redis_client, persist_tasks_held):
    """A redelivered drain (acks_late after a worker crash) writes each order once."""
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=5)
    placement = place_order(sale.pk, buyer(), 2)
    assert placement.queued and getattr(placement.order, "queued", False)
    assert persist_tasks_held == [sale.pk]
    assert tasks.persist_queued.apply(args=(sale.pk,)).result == 1
    assert tasks.persist_queued.apply(args=(sale.pk,)).result == 0
    redelivered = [order_queue.record_of(placement.order)]
    assert order_queue.persist_batch(sale.pk, redelivered) == 0  # written once, not twice
    assert Order.objects.filter(sale=sale).count() == 1
    assert Sale.objects.get(pk=sale.pk).stock_left == 3
    assert order_queue.queued_records(sale.pk) == {}


def test_a_crowd_asks_for_one_drain_per_batch(redis_client, persist_tasks_held):
    """The first order after a drain began asks for the next one; the rest ride along."""
    sale = make_sale(stock=50, strategy="redis_atomic")
    for i in range(10):
        place_order(sale.pk, buyer(f"a{i}"), 1)
    assert persist_tasks_held == [sale.pk]
    assert order_queue.drain(sale.pk) == 10
    for i in range(5):
        place_order(sale.pk, buyer(f"b{i}"), 1)
    assert persist_tasks_held == [sale.pk, sale.pk]
    assert order_queue.drain(sale.pk) == 5
    assert Order.objects.filter(sale=sale).count() == 15
    assert Sale.objects.get(pk=sale.pk).stock_left == 35


def test_a_batch_is_one_update_and_one_insert(redis_client, persist_tasks_held):
    sale = make_sale(stock=50, strategy="redis_atomic")
    records = [
        order_queue.record_of(place_order(sale.pk, buyer(f"q{i}"), 1).order) for i in range(20)
    ]
    with CaptureQueriesContext(connection) as queries:
        assert order_queue.persist_batch(sale.pk, records) == 20
    writes = [q["sql"].split()[0] for q in queries if q["sql"].split()[0] in ("UPDATE", "INSERT")]
    assert writes == ["UPDATE", "INSERT"]
    assert Sale.objects.get(pk=sale.pk).stock_left == 30
    assert order_queue.persist_batch(sale.pk, records) == 0  # redelivered: nothing written twice
    assert Order.objects.filter(sale=sale).count() == 20


def test_a_drained_order_reads_back_as_the_answer_promised(redis_client, persist_tasks_held):
    """The batch's rows carry every column the order's 202 showed, and the columns a record
    has no value for as a new order has them."""
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=3)
    promised = place_order(sale.pk, buyer(), 3, "key-1").order
    before = timezone.now()
    assert order_queue.drain(sale.pk) == 1
    stored = Order.objects.get(pk=promised.id)
    for name in ("sale_id", "buyer_id", "quantity", "unit_price", "strategy", "idempotency_key"):
        assert getattr(stored, name) == getattr(promised, name), name
    assert stored.pay_by == promised.pay_by and stored.total == promised.total
    assert stored.status == OrderStatus.PENDING_PAYMENT
    assert before <= stored.created_at <= stored.updated_at <= timezone.now()
    assert (stored.fence, stored.batch_size, stored.lock_wait_ms, stored.paid_at) == (None,) * 4
    assert Sale.objects.get(pk=sale.pk).stock_left == 2


def test_a_batch_row_that_breaks_a_constraint_leaves_only_its_own_order_queued(
    redis_client, persist_tasks_held
):
    """One record conflicting with a row written meanwhile (same buyer, sale and key under
    another id) fails the batch's one INSERT as a whole; the orders are then written
    one at a time, and only the conflicting one stays queued, the stock deducted once each."""
    sale = make_sale(stock=10, strategy="redis_atomic")
    records = [
        order_queue.record_of(place_order(sale.pk, buyer(f"c{i}"), 1, f"key-{i}").order)
        for i in range(4)
    ]
    clash = dict(records[2], id=records[-1]["id"] + 1000)  # written by another path meanwhile
    order_queue.persist_batch(sale.pk, [clash])
    assert Sale.objects.get(pk=sale.pk).stock_left == 9
    assert order_queue.persist_batch(sale.pk, records) == 3
    written = set(Order.objects.filter(sale=sale).values_list("pk", flat=True))
    assert written == {records[i]["id"] for i in (0, 1, 3)} | {clash["id"]}
    assert set(order_queue.queued_records(sale.pk)) == {records[2]["id"]}
    assert Sale.objects.get(pk=sale.pk).stock_left == 6


def test_a_batch_short_of_stock_is_written_one_by_one_never_oversold(
    redis_client, persist_tasks_held
):
    """After Redis lost its data, the database may lack stock for a whole batch: each order is
    then written alone, and the ones with no unit left are recorded cancelled."""
    sale = make_sale(stock=3, strategy="redis_atomic")
    records = [
        order_queue.record_of(place_order(sale.pk, buyer(f"s{i}"), 1).order) for i in range(3)
    ]
    Sale.objects.filter(pk=sale.pk).update(stock_left=2)  # one unit sold elsewhere meanwhile
    assert order_queue.persist_batch(sale.pk, records) == 3
    statuses = sorted(Order.objects.filter(sale=sale).values_list("status", flat=True))
    assert statuses == sorted([OrderStatus.CANCELLED] + [OrderStatus.PENDING_PAYMENT] * 2)
    assert Sale.objects.get(pk=sale.pk).stock_left == 0


def test_sweep_persists_orders_whose_drain_was_lost(redis_client, persist_tasks_held):
    sale = make_sale(stock=5, strategy="redis_atomic")
    placement = place_order(sale.pk, buyer(), 1)  # its drain request is held: lost
    assert order_queue.persist_stale_queued(older_than_seconds=60) == 0  # too young to touch
    assert order_queue.persist_stale_queued(older_than_seconds=0) == 1
    assert Order.objects.filter(pk=placement.order.id).exists()
    assert Sale.objects.get(pk=sale.pk).stock_left == 4


def test_sweep_costs_one_round_trip_however_many_sales_ended_long_ago(
    redis_client, persist_tasks_held, redis_round_trips
):
    """The sweep (every 10 s) looks at the queued hashes of the sales whose keys may still
    exist, in one pipeline: ended sales pile up over time, its cost must not."""
    live = make_sale(stock=5, strategy="redis_atomic")
    placement = place_order(live.pk, buyer(), 1)  # its drain request is held: lost
    gone = timedelta(days=-3) - stock.KEY_GRACE
    old = [make_sale(strategy="redis_atomic", starts_in=gone) for _ in range(20)]
    looks = redis_round_trips(b"HLEN")
    assert order_queue.persist_stale_queued(older_than_seconds=0) == 1
    assert Order.objects.filter(pk=placement.order.id).exists()
    assert len(looks) == 1 and sale_keys(live.pk).queued.encode() in looks[0]
    assert not any(sale_keys(sale.pk).queued.encode() in looks[0] for sale in old)


def test_an_order_accepted_during_a_drain_asks_for_the_next(
    redis_client, persist_tasks_held, monkeypatch
):
    """The drain deletes its flag before it reads the queue: an order accepted after the read
    must find the flag gone and ask for another drain, or it would wait for the sweep."""
    sale = make_sale(stock=5, strategy="redis_atomic")
    place_order(sale.pk, buyer("early"), 1)
    read_queue = order_queue.queued_records

    def read_then_accept_one_more(sale_id, client=None):
        records = read_queue(sale_id, client)
        monkeypatch.setattr(order_queue, "queued_records", read_queue)
        place_order(sale.pk, buyer("late"), 1)
        return records

    monkeypatch.setattr(order_queue, "queued_records", read_then_accept_one_more)
    assert order_queue.drain(sale.pk) == 1
    assert persist_tasks_held == [sale.pk, sale.pk]
    assert order_queue.drain(sale.pk) == 1
    assert order_queue.queued_records(sale.pk) == {}


def test_drains_racing_a_crowd_leave_no_order_behind(redis_client, persist_tasks_held):
    """Two 'workers' run every drain the placements ask for, while 40 buyers place orders.
    When the crowd is done and the last requested drain has run, nothing is left queued and
    every accepted order is written once (a drain that read the hash before deleting its flag
    would strand the orders accepted in between)."""
    sale = make_sale(stock=100, strategy="redis_atomic")
    users = [buyer(f"c{i}") for i in range(40)]
    crowd_done = threading.Event()

    def worker() -> None:
        while not (crowd_done.is_set() and not persist_tasks_held):
            try:
                sale_id = persist_tasks_held.pop(0)
            except IndexError:
                time.sleep(0.001)
                continue
            try:
                order_queue.drain(sale_id)
            finally:
                connection.close()

    def place(user) -> None:
        try:
            place_order(sale.pk, user, 1)
        finally:
            connection.close()

    workers = [threading.Thread(target=worker) for _ in range(2)]
    placers = [threading.Thread(target=place, args=(user,)) for user in users]
    for thread in workers + placers:
        thread.start()
    for thread in placers:
        thread.join(60)
    crowd_done.set()
    for thread in workers:
        thread.join(60)
    assert order_queue.queued_records(sale.pk) == {}
    assert Order.objects.filter(sale=sale).count() == 40
    assert Sale.objects.get(pk=sale.pk).stock_left == 60


def test_real_worker_persists_redis_atomic_orders(redis_client, celery_worker):
    """Not eager: the order travels through the broker to a worker process and back."""
    sale = make_sale(stock=3, strategy="redis_atomic", per_user_limit=1)
    placements = [place_order(sale.pk, buyer(f"w{i}"), 1) for i in range(3)]
    assert all(p.queued for p in placements)
    deadline = time.monotonic() + 30
    # Written to the database, then dropped from the queued hash: wait for both.
    while Order.objects.filter(sale=sale).count() < 3 or order_queue.queued_records(sale.pk):
        assert time.monotonic() < deadline, "the worker never persisted the orders"
        time.sleep(0.1)
    sale.refresh_from_db()
    assert sale.stock_left == 0
    assert order_queue.find_order(placements[0].order.id).pk == placements[0].order.id
