"""Idempotency-Keys are scoped to the sale's order endpoint, and survive a Redis restart.

redis_atomic answers replays from its per-sale index in Redis (``…:idem``) without asking the
database, so that index must agree with the database's unique (sale, buyer, key) and be rebuilt
with the rest of the mirror when Redis lost it.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from seckill import order_queue, stock
from seckill.keys import sale_keys
from seckill.models import Order
from seckill.placement import place_order
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)

KEYED_STRATEGIES = ["unsafe", "lock", "lock_fenced", "db_row_lock", "redis_atomic"]


@pytest.mark.parametrize("strategy", KEYED_STRATEGIES)
def test_a_key_replays_within_its_sale_and_is_new_in_another(strategy, redis_client, eager_celery):
    first_sale, other_sale = (make_sale(stock=5, strategy=strategy) for _ in range(2))
    buyer = get_user_model().objects.create_user("keyed")
    first = place_order(first_sale.pk, buyer, 1, "checkout-1")
    replay = place_order(first_sale.pk, buyer, 1, "checkout-1")
    elsewhere = place_order(other_sale.pk, buyer, 1, "checkout-1")
    assert first.created and not replay.created and replay.order.pk == first.order.pk
    assert elsewhere.created and elsewhere.order.pk != first.order.pk
    assert Order.objects.filter(buyer=buyer).count() == 2
    assert order_queue.queued_records(other_sale.pk) == {}  # written, not stuck on a key conflict


def forget_mirror_but_queue(sale_id: int, client) -> None:
    """Redis lost the sale's mirror and key index (a restart without persistence would also
    lose the queue; keeping it shows queued keys are indexed again too)."""
    keys = sale_keys(sale_id)
    client.delete(keys.stock, keys.buyers, keys.soldout, keys.idempotency)


def test_redis_atomic_replays_persisted_orders_after_the_index_is_lost(redis_client, eager_celery):
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=3)
    buyer = get_user_model().objects.create_user("retrier")
    first = place_order(sale.pk, buyer, 1, "retry-me")
    assert Order.objects.filter(pk=first.order.pk).exists()  # eager: drained already
    forget_mirror_but_queue(sale.pk, redis_client)
    replay = place_order(sale.pk, buyer, 1, "retry-me")
    assert not replay.created and replay.order.pk == first.order.pk
    assert Order.objects.filter(sale=sale).count() == 1
    assert stock.read_mirror(sale.pk)["stock"] == 4


def test_redis_atomic_replays_queued_orders_after_the_index_is_lost(
    redis_client, persist_tasks_held
):
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=3)
    buyer = get_user_model().objects.create_user("queued")
    first = place_order(sale.pk, buyer, 1, "still-queued")
    forget_mirror_but_queue(sale.pk, redis_client)
    replay = place_order(sale.pk, buyer, 1, "still-queued")
    assert not replay.created and replay.order.pk == first.order.pk
    assert order_queue.drain(sale.pk) == 1
    assert Order.objects.filter(sale=sale).count() == 1
    assert stock.read_mirror(sale.pk)["stock"] == 4
