"""redis_atomic when Redis loses its data (no persistence) while persist tasks are in flight.

Found by ``python -m loadtest.faults --only redis_restart_under_load`` (redis_atomic, no AOF):
54 orders for 50 units. A persist task already taken by the worker still runs after the
restart, but the mirror was rebuilt from a database that did not have that order yet, so its
unit is sold a second time. Reproduced here step by step, in process, deterministically.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from seckill import order_queue, stock
from seckill.models import LIVE_ORDER_STATUSES, Order, OrderStatus, Sale
from seckill.stock import ReservationStatus
from seckill.strategies import new_order
from tests.conftest import empty_test_redis
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)


def accept(sale: Sale, buyer_id: int) -> dict:
    """What place_redis_atomic does before handing the record to Celery."""
    order = new_order(sale, buyer_id, 1, "")
    record = order_queue.record_of(order)
    reservation = stock.reserve(sale, buyer_id, 1, "", order.id, record)
    assert reservation.status == ReservationStatus.RESERVED
    return record


def test_task_in_flight_across_a_redis_wipe_never_oversells(redis_client):
    """Fault: Redis wiped (a restart without persistence) between accepting an order and its
    persist task running. Expect: the database is never oversold — the late task finds no unit
    left and records its order as cancelled (it exists, as its 202 promised, but holds no
    unit); the audit is clean."""
    sale = make_sale(stock=1, strategy="redis_atomic")
    first, second = (get_user_model().objects.create_user(n) for n in ("first", "second"))
    in_flight = accept(sale, first.pk)  # its task is in a worker's memory
    empty_test_redis(redis_client)  # the restart: the sale's keys and queued hash are gone
    stock.load_mirror(sale)  # rebuilt from the database: 1 unit, nobody has bought
    accept(sale, second.pk)  # sold again...
    assert order_queue.drain(sale.pk) == 1  # ...and written
    assert order_queue.persist_batch(sale.pk, [in_flight]) == 1  # the worker's batch runs now
    live = Order.objects.filter(sale=sale, status__in=LIVE_ORDER_STATUSES)
    assert live.count() == 1 and Sale.objects.get(pk=sale.pk).stock_left == 0
    assert Order.objects.get(pk=in_flight["id"]).status == OrderStatus.CANCELLED
    call_command("seckill_audit", "--sale", str(sale.pk), "--settle", "0.2")
