"""A routine mirror load is logged as INFO; only real drift repaired is a WARNING."""

from __future__ import annotations

import logging

import pytest

from seckill import stock
from seckill.keys import sale_keys
from seckill.reconcile import reconcile
from tests.engine.test_reconcile import only, sale_with_orders

pytestmark = pytest.mark.django_db(transaction=True)


def test_loading_a_missing_mirror_is_info_and_drift_is_a_warning(redis_client, caplog):
    sale, _ = sale_with_orders("lock")
    stock.drop_mirror(sale.pk, redis_client)
    with caplog.at_level(logging.INFO, logger="seckill.reconcile"):
        assert only(reconcile(sale.pk, settle=0)).outcome == "loaded"
    loaded = [r for r in caplog.records if "mirror loaded" in r.getMessage()]
    assert [r.levelno for r in loaded] == [logging.INFO]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    caplog.clear()
    redis_client.set(sale_keys(sale.pk).stock, 999)  # drift
    with caplog.at_level(logging.INFO, logger="seckill.reconcile"):
        assert only(reconcile(sale.pk, settle=0)).outcome == "repaired"
    assert [r.levelno for r in caplog.records if "repaired" in r.getMessage()] == [logging.WARNING]
