"""PostgreSQL drops the connection in the middle of the order transaction.

The fault is real: a second connection runs ``pg_terminate_backend`` on the backend serving the
placement, after the stock row was updated inside the transaction and before the order row is
inserted. Expect: the request answers 503 ``unavailable``, the deduction and the order both
roll back (database and Redis mirror untouched), the next request reconnects and buys, and
``seckill_audit`` is clean. For redis_atomic the same fault hits the Celery persist step: the
retry writes the order and its deduction exactly once.
"""

from __future__ import annotations

import psycopg
import pytest
from django.core.management import call_command
from django.db import OperationalError, connection

from seckill import queue, stock
from seckill.models import Order, Sale
from seckill.strategies import new_order
from tests.conftest import database_url_for_subprocesses
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL): SQLite has no server to drop us")


@pytest.fixture
def drop_connection_at_order_insert(monkeypatch):
    """Terminate this process's backend just before the first order INSERT (the stock UPDATE
    has run in the same transaction)."""
    original = Order.save
    dropped: list[int] = []

    def save(self, *args, **kwargs):
        if not dropped:
            pid = connection.connection.info.backend_pid
            assert connection.in_atomic_block
            with psycopg.connect(database_url_for_subprocesses(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            dropped.append(pid)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Order, "save", save)
    return dropped


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


def test_connection_dropped_while_persisting_redis_atomic(
    make_client, redis_client, drop_connection_at_order_insert
):
    """Fault: pg_terminate_backend inside queue.persist (what the Celery task runs). The task
    fails (Celery retries it); the retry writes order and deduction once."""
    sale = make_sale(stock=5, strategy="redis_atomic")
    buyer = make_client()
    order = new_order(sale, buyer.user.pk, 1, "")
    record = queue.record_of(order)
    assert stock.reserve(sale, buyer.user.pk, 1, "", order.id, record).status == stock.RESERVED
    with pytest.raises(OperationalError):
        queue.persist(record)
    connection.close_if_unusable_or_obsolete()  # what Celery's Django fixup does after a task
    assert Sale.objects.get(pk=sale.pk).stock_left == 5
    assert not Order.objects.filter(pk=order.id).exists()
    persisted, created = queue.persist(record)
    assert created and persisted.pk == order.id
    assert queue.persist(record)[1] is False  # a redelivery changes nothing
    assert Sale.objects.get(pk=sale.pk).stock_left == 4
    assert stock.queued_records(sale.pk) == {}
    audit_clean(sale.pk)
