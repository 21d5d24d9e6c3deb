"""PostgreSQL drops the connection in the middle of the order transaction.

The fault is real: a second connection runs ``pg_terminate_backend`` on the backend serving the
placement, after the stock row was updated inside the transaction and before the order row is
inserted. Expect: the request answers 503 ``unavailable``, the deduction and the order both
roll back (database and Redis mirror untouched), the next request reconnects and buys, and
``seckill_audit`` is clean. For redis_atomic the same fault hits the Celery task's drain (one
batch UPDATE and INSERT): the retry writes the order and its deduction exactly once.
"""

from __future__ import annotations

import psycopg
import pytest
from django.core.management import call_command
from django.db import OperationalError, connection

from seckill import order_queue, stock, tasks
from seckill.models import Order, Sale
from seckill.stock import ReservationStatus
from seckill.strategies import new_order
from tests.conftest import database_url_for_subprocesses
from tests.engine.factories import make_sale

ORDERS = Order._meta.db_table

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL): SQLite has no server to drop us")


@pytest.fixture
def drop_connection_at_order_insert():
    """Terminate this process's backend just before the first INSERT into the order table, by
    ``save()`` or ``bulk_create()`` alike (the stock UPDATE has run in the same transaction)."""
    dropped: list[int] = []

    def terminate_before_insert(execute, sql, params, many, context):
        if not dropped and sql.lstrip().upper().startswith("INSERT") and ORDERS in sql:
            pid = connection.connection.info.backend_pid
            assert connection.in_atomic_block
            with psycopg.connect(database_url_for_subprocesses(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            dropped.append(pid)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(terminate_before_insert):
        yield dropped


def audit_clean(sale_id: int) -> None:
    call_command("seckill_audit", "--sale", str(sale_id), "--settle", "0.2")  # raises if not


@pytest.mark.parametrize("strategy", ["lock", "lock_fenced", "db_row_lock"])
def test_connection_dropped_mid_transaction_rolls_back_both(
    strategy, make_client, redis_client, drop_connection_at_order_insert
):
    """Fault: pg_terminate_backend between the stock UPDATE and the order INSERT."""
    sale = make_sale(stock=5, strategy=strategy, per_user_limit=2)
    buyer = make_client()
    url = f"/api/v1/sales/{sale.pk}/orders/"
    failed = buyer.post(url, {"quantity": 1}, format="json")
    assert drop_connection_at_order_insert, "the fault was not injected"
    assert failed.status_code == 503 and failed.json()["error"]["code"] == "unavailable"
    assert Sale.objects.get(pk=sale.pk).stock_left == 5
    assert Order.objects.filter(sale=sale).count() == 0
    assert stock.read_mirror(sale.pk)["stock"] == 5
    again = buyer.post(url, {"quantity": 1}, format="json")
    assert again.status_code == 201, again.content
    assert Sale.objects.get(pk=sale.pk).stock_left == 4
    assert stock.read_mirror(sale.pk)["stock"] == 4
    audit_clean(sale.pk)


def test_connection_dropped_while_draining_redis_atomic(
    make_client, redis_client, drop_connection_at_order_insert
):
    """Fault: pg_terminate_backend inside ``order_queue.drain`` (what the Celery task runs),
    between the batch's stock UPDATE and its multi-row INSERT. The drain fails (Celery retries
    it); the retry writes order and deduction once, and a redelivery writes nothing."""
    sale = make_sale(stock=5, strategy="redis_atomic")
    buyer = make_client()
    order = new_order(sale, buyer.user.pk, 1, "")
    record = order_queue.record_of(order)
    reservation = stock.reserve(sale, buyer.user.pk, 1, "", order.id, record)
    assert reservation.status == ReservationStatus.RESERVED
    with pytest.raises(OperationalError):
        tasks.persist_queued.run(sale.pk)
    assert drop_connection_at_order_insert, "the fault was not injected"
    connection.close_if_unusable_or_obsolete()  # what Celery's Django fixup does after a task
    assert Sale.objects.get(pk=sale.pk).stock_left == 5
    assert not Order.objects.filter(pk=order.id).exists()
    assert order_queue.queued_records(sale.pk) == {order.id: record}  # still queued for the retry
    assert tasks.persist_queued.run(sale.pk) == 1
    assert tasks.persist_queued.run(sale.pk) == 0  # a redelivery changes nothing
    assert Order.objects.filter(pk=order.id).count() == 1
    assert Sale.objects.get(pk=sale.pk).stock_left == 4
    assert order_queue.queued_records(sale.pk) == {}
    audit_clean(sale.pk)
