"""OrderSerializer renders orders by hand (it is on every order request's path); it must say
exactly what DRF's generic, field-by-field rendering of its declared fields says."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import serializers

from seckill import order_queue
from seckill.api.serializers import OrderSerializer
from seckill.models import Order, OrderStatus
from seckill.strategies import new_order
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db


def generic(order: Order) -> dict:
    serializer = OrderSerializer(order)
    return serializers.ModelSerializer.to_representation(serializer, order)


def orders() -> list[Order]:
    sale = make_sale(stock=10, per_user_limit=5, price="12.30")
    user = get_user_model().objects.create_user("repr")
    placed = new_order(sale, user.pk, 3, "k-1", fence=41, lock_wait_ms=1.25)
    placed.save(force_insert=True)
    paid = new_order(sale, user.pk, 1, "")
    paid.status, paid.paid_at = OrderStatus.PAID, timezone.now() - timedelta(microseconds=7)
    paid.save(force_insert=True)
    queued = order_queue.order_from_record(
        order_queue.record_of(new_order(sale, user.pk, 2, "k-2"))
    )
    return [Order.objects.get(pk=placed.pk), Order.objects.get(pk=paid.pk), queued]


def test_hand_rendering_matches_the_declared_fields():
    for order in orders():
        assert OrderSerializer(order).data == generic(order)


def test_lists_render_the_same_way():
    listed = orders()
    rendered = OrderSerializer(listed, many=True).data
    assert [dict(row) for row in rendered] == [generic(order) for order in listed]


def test_plain_lock_fence_is_one_story_for_api_and_replay(make_client):
    """The 201, its replay and GET /orders/<id> report the same fence: the one on the order
    (a replay used to report none under lock while the panel showed the lock's)."""
    sale = make_sale(stock=3, strategy="lock")
    client = make_client("fence-story")
    url = f"/api/v1/sales/{sale.pk}/orders/"
    first = client.post(url, {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="same-key-1")
    again = client.post(url, {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="same-key-1")
    assert (first.status_code, again.status_code) == (201, 200)
    order_id = first.json()["order_id"]
    shown = client.get(f"/api/v1/orders/{order_id}/").json()
    fences = {first.json()["fence"], again.json()["fence"], shown["fence"]}
    assert fences == {Order.objects.get().fence} and None not in fences
