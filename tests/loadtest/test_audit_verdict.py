"""The load test's verdict fails on a sale key without a TTL (the project audit's warning)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from loadtest.audit import count, is_clean, project_audit
from seckill.keys import sale_keys
from seckill.placement import place_order
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)


def verdict_for(sale) -> dict:
    verdict = {**count(sale.pk, []), "queued_left": 0, "settled": True}
    verdict["keys_without_ttl"] = project_audit(sale.pk)["keys_without_ttl"]
    return verdict


def test_a_key_without_ttl_fails_the_verdict(redis_client):
    sale = make_sale(stock=3)
    place_order(sale.pk, get_user_model().objects.create_user("b"), 1)
    assert is_clean(verdict_for(sale))
    redis_client.persist(sale_keys(sale.pk).buyers)
    verdict = verdict_for(sale)
    assert verdict["keys_without_ttl"] == [sale_keys(sale.pk).buyers]
    assert not is_clean(verdict)
