"""Group commit under the item lock (issue 16): the holder decides a whole queue of buyers.

Against a real Redis and the test database, with real threads; the fault cases (kill -9,
SIGSTOP of a combiner process) are in tests/faults/test_group_commit_faults.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from seckill import group_commit, probes
from seckill.errors import Busy, LimitReached, SoldOut
from seckill.ids import next_order_id
from seckill.item_locks import item_lock
from seckill.keys import sale_keys
from seckill.models import Order
from seckill.placement import place_order
from seckill.strategies import order_columns, order_from_columns, read_modify_write_batch
from tests.engine.crowd import Buyer, run_threads
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)


def users(n: int, prefix: str = "gc") -> list:
    return [get_user_model().objects.create_user(f"{prefix}-{i}") for i in range(n)]


def request(buyer, quantity: int = 1, key: str = "") -> group_commit.Request:
    return group_commit.Request(next_order_id(), buyer.pk, quantity, key)


def test_a_batch_is_one_read_one_update_one_insert(redis_client):
    sale = make_sale(stock=10, strategy="lock_fenced", per_user_limit=2)
    buyers = users(4)
    batch = group_commit.Batch([request(b) for b in buyers], fence=7, lock_wait_ms=1.5)
    with CaptureQueriesContext(connection) as queries:
        outcomes = read_modify_write_batch(sale, batch, check_fence=True)
    verbs = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert [v for v in verbs if v in ("SELECT", "UPDATE", "INSERT")] == [
        "SELECT",
        "UPDATE",
        "INSERT",
    ], verbs
    assert all(o.created for o in outcomes)
    sale.refresh_from_db()
    assert sale.stock_left == 6 and sale.last_fence == 7
    orders = Order.objects.filter(sale=sale).order_by("batch_position")
    assert [(o.batch_position, o.batch_size, o.fence) for o in orders] == [
        (i, 4, 7) for i in range(1, 5)
    ]
    assert {o.id for o in orders} == {r.id for r in batch.requests}


def test_a_waiters_answer_carries_its_order_as_committed(redis_client):
    """A waiter renders its order from the answer: no read back, and nothing differs from the
    row the combiner committed."""
    sale = make_sale(stock=10, strategy="lock")
    batch = group_commit.Batch([request(b, key="k") for b in users(3)], fence=4, lock_wait_ms=2.0)
    outcomes = read_modify_write_batch(sale, batch, check_fence=False)
    for outcome in outcomes:
        answer = group_commit.Outcome.decode(outcome.encode())  # as the waiter receives it
        assert answer.record is not None and answer.order_id == outcome.order_id
        with CaptureQueriesContext(connection) as queries:
            rebuilt = order_from_columns(answer.record)
        assert not queries.captured_queries
        stored = Order.objects.get(pk=outcome.order_id)
        assert order_columns(rebuilt) == order_columns(stored)
        assert (rebuilt.created_at, rebuilt.unit_price, rebuilt.pay_by) == (
            stored.created_at,
            stored.unit_price,
            stored.pay_by,
        )
        assert not rebuilt._state.adding  # a saved order, as if read from the database
    refused = group_commit.Outcome(error=SoldOut())
    assert group_commit.Outcome.decode(refused.encode()).record is None


def test_a_batch_decides_in_order_limits_stock_and_replays(redis_client):
    sale = make_sale(stock=3, strategy="lock", per_user_limit=2)
    ann, bob, cat = users(3)
    requests = [
        request(ann, key="a1"),
        request(ann, key="a1"),  # the same key again: a replay of the first
        request(ann, key="a2"),  # ann's second unit: within her limit of 2
        request(ann, key="a3"),  # a third: over it, though stock is left
        request(bob, quantity=2),  # 1 unit left: sold out ("only 1 left")
        request(cat),  # takes the last unit
        request(bob),  # nothing left
    ]
    batch = group_commit.Batch(requests, fence=3, lock_wait_ms=0.0)
    outcomes = read_modify_write_batch(sale, batch, check_fence=False)
    first, replay, second, over, bob_two, cat_one, bob_one = outcomes
    assert first.created and second.created and cat_one.created
    assert replay.order_id == first.order_id and not replay.created
    assert isinstance(over.error, LimitReached)
    assert isinstance(bob_two.error, SoldOut) and bob_two.error.message == "only 1 left"
    assert isinstance(bob_one.error, SoldOut) and bob_one.error.message == "sold out"
    sale.refresh_from_db()
    assert sale.stock_left == 0
    assert Order.objects.filter(sale=sale).count() == 3
    assert redis_client.exists(sale_keys(sale.pk).soldout)


def test_a_crowd_rides_in_batches_and_never_oversells(redis_client, settings):
    # The first holder's pause lets the rest of the crowd queue up behind it.
    settings.SECKILL_CRITICAL_SECTION_DELAY = 0.05
    settings.SECKILL_LOCK_WAIT = 5.0
    sale = make_sale(stock=15, strategy="lock", per_user_limit=1)
    crowd = users(30)
    outcomes = run_threads(sale.pk, [Buyer(u.pk, f"k-{u.pk}") for u in crowd])
    codes = sorted(o.code for o in outcomes)
    assert codes.count("ok") == 15 and codes.count("sold_out") == 15, codes
    orders = list(Order.objects.filter(sale=sale))
    assert len(orders) == 15 and len({o.buyer_id for o in orders}) == 15
    assert max(o.batch_size for o in orders) > 1, "no request rode in another's batch"
    sale.refresh_from_db()
    assert sale.stock_left == 0


def test_batch_of_one_is_the_plain_read_modify_write(redis_client, settings):
    settings.SECKILL_LOCK_BATCH = 1
    sale = make_sale(stock=5, strategy="lock_fenced")
    (buyer,) = users(1)
    placement = place_order(sale.pk, buyer, 1)
    assert placement.created and placement.order.batch_position is None
    assert not redis_client.exists(sale_keys(sale.pk).requests)


def test_the_api_order_shows_its_batch(redis_client):
    sale = make_sale(stock=5, strategy="lock")
    (buyer,) = users(1)
    placement = place_order(sale.pk, buyer, 1, "only-one")
    order = placement.order
    assert (order.batch_position, order.batch_size) == (1, 1)
    assert order.batch_id == f"{sale.pk}:{order.fence}" and placement.fence == order.fence
    again = place_order(sale.pk, buyer, 1, "only-one")
    assert not again.created and again.order.pk == order.pk


class Pause:
    """A probe: sleeps at one point of the critical section; runs with its own settings."""

    def __init__(self, at: str = "", seconds: float = 0.0, **overrides: Any) -> None:
        self.at, self.seconds, self._overrides = at, seconds, overrides
        self.reached = threading.Event()

    def point(self, name: str, **facts: Any) -> None:
        if name == self.at:
            self.reached.set()
            time.sleep(self.seconds)

    def overrides(self) -> dict[str, Any]:
        return self._overrides


def in_thread(target, probe: Pause) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        with probes.probing(probe):
            try:
                result["placement"] = target()
            except Exception as exc:
                result["error"] = exc
            finally:
                connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_a_wait_that_runs_out_while_queued_is_busy_and_withdrawn(redis_client, settings):
    settings.SECKILL_LOCK_WAIT = 0.3
    sale = make_sale(stock=5, strategy="lock")
    (buyer,) = users(1)
    holder = item_lock(sale.pk)  # a reset or a return holding the lock, say
    assert holder.acquire()
    try:
        with pytest.raises(Busy):
            place_order(sale.pk, buyer, 1, "busy-1")
    finally:
        holder.release()
    assert redis_client.llen(sale_keys(sale.pk).requests) == 0  # nobody will place it later
    assert not Order.objects.filter(sale=sale).exists()


def test_a_wait_that_runs_out_after_its_request_was_taken_gets_its_answer(redis_client):
    """The earlier attempt's defect: such a waiter answered 503 in a normal crowd."""
    wait_runs_out_after_the_request_was_taken()


def wait_runs_out_after_the_request_was_taken() -> None:
    """A waiter whose wait ends while a combiner decides its request gets that answer (also
    run on a Redis Cluster, tests/cluster)."""
    sale = make_sale(stock=5, strategy="lock_fenced")
    combiner_user, waiter_user = users(2)
    # The combiner holds the lock 0.6 s before taking its batch and 1 s inside the decision.
    combiner = Pause("entered", 0.6)
    slow_read = Pause("read", 1.0)

    class Both(Pause):
        def point(self, name: str, **facts: Any) -> None:
            combiner.point(name)
            slow_read.point(name)

    first, first_result = in_thread(lambda: place_order(sale.pk, combiner_user, 1), Both())
    assert combiner.reached.wait(20)
    # Queued before the batch is taken; its wait ends while the batch is being decided.
    waiter = Pause(SECKILL_LOCK_WAIT=0.8)
    second, second_result = in_thread(lambda: place_order(sale.pk, waiter_user, 1, "w"), waiter)
    first.join(30)
    second.join(30)
    assert "error" not in second_result, second_result
    order = second_result["placement"].order
    assert order.batch_size == 2 and order.fence == first_result["placement"].fence
    assert Order.objects.filter(sale=sale).count() == 2
