"""Every Redis key a sale creates expires (a day after the sale ends), under every strategy,
through sales, a replay, a cancel and sold-out: nothing outlives its sale for good."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from seckill import lifecycle, stock
from seckill.audit import audit
from seckill.keys import sale_keys
from seckill.models import Strategy
from seckill.placement import place_order
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("strategy", Strategy.values)
def test_every_sale_key_has_a_ttl(strategy, redis_client, eager_celery):
    sale = make_sale(stock=2, strategy=strategy)
    first, second, third = (get_user_model().objects.create_user(f"b{i}") for i in range(3))
    order = place_order(sale.pk, first, 1, "key-1").order
    place_order(sale.pk, first, 1, "key-1")  # a replay
    lifecycle.cancel_order(order.pk, first)  # units back into the mirror
    place_order(sale.pk, second, 1)
    place_order(sale.pk, third, 1)  # the last unit: sold out
    assert stock.read_mirror(sale.pk)["sold_out"]

    keys = redis_client.keys(f"{sale_keys(sale.pk).prefix}*")
    assert sale_keys(sale.pk).buyers.encode() in keys
    forever = [key for key in keys if redis_client.ttl(key) == -1]
    assert forever == []
    (entry,) = audit(sale.pk, settle=0)["sales"]
    assert "key_without_ttl" not in {w["code"] for w in entry["warnings"]}
