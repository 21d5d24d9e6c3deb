"""Redis gone mid-sale: the API answers 503 ``unavailable`` at once and writes nothing."""

import pytest

from seckill.models import Order, Sale
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("strategy", ["lock", "redis_atomic", "db_row_lock", "lock_fenced"])
def test_redis_down_is_503_and_nothing_half_written(strategy, make_client, app_redis):
    sale = make_sale(stock=5, strategy=strategy, per_user_limit=5)
    client = make_client()
    url = f"/api/v1/sales/{sale.pk}/orders/"
    assert client.post(url, {"quantity": 1}, format="json").status_code in (201, 202)
    app_redis.stop()
    response = client.post(url, {"quantity": 1}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert response["Retry-After"]
    orders_before = Order.objects.filter(sale=sale).count()
    assert orders_before <= 1
    stock_left = Sale.objects.get(pk=sale.pk).stock_left
    assert stock_left + orders_before == 5  # conservation: no unit lost, none half-sold


def test_busy_is_429_with_retry_after(make_client, redis_client, settings):
    from seckill.item_locks import item_lock

    settings.SECKILL_LOCK_WAIT = 0.05
    sale = make_sale(stock=5)
    holder = item_lock(sale.pk, watchdog=False)
    assert holder.acquire(blocking=False)
    try:
        response = make_client().post(
            f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 1}, format="json"
        )
    finally:
        holder.release()
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "busy" and response["Retry-After"] == "1"
    assert Order.objects.count() == 0
