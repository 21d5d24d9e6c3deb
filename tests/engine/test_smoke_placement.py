import pytest
from django.contrib.auth import get_user_model

from seckill.errors import LimitReached, SoldOut
from seckill.models import Order, Sale, Strategy
from seckill.placement import place_order
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("strategy", [s.value for s in Strategy])
def test_sells_until_sold_out(strategy, redis_client, eager_celery):
    sale = make_sale(stock=3, strategy=strategy, per_user_limit=2)
    users = [get_user_model().objects.create_user(f"u{i}") for i in range(4)]
    for user in users[:3]:
        assert place_order(sale.pk, user, 1).created
    with pytest.raises(SoldOut):
        place_order(sale.pk, users[3], 1)
    sale.refresh_from_db()
    assert sale.stock_left == 0
    assert Order.objects.filter(sale=sale).count() == 3


def test_limit(redis_client):
    sale = make_sale(stock=10, strategy="lock", per_user_limit=2)
    user = get_user_model().objects.create_user("x")
    place_order(sale.pk, user, 2)
    with pytest.raises(LimitReached):
        place_order(sale.pk, user, 1)
    assert Sale.objects.get(pk=sale.pk).stock_left == 8


@pytest.mark.parametrize("strategy", [s.value for s in Strategy])
def test_fewer_units_left_than_asked_is_one_answer_under_every_strategy(
    strategy, redis_client, eager_celery
):
    """0 < stock < quantity: every strategy refuses with the same sold_out "only N left" (the
    buyer may still buy fewer), and a buyer who would also pass their limit hears about the
    limit first, as the lock strategies decide it."""
    sale = make_sale(stock=3, strategy=strategy, per_user_limit=3)
    first, second = (get_user_model().objects.create_user(n) for n in ("first", "second"))
    place_order(sale.pk, first, 2)
    with pytest.raises(SoldOut) as refused:
        place_order(sale.pk, second, 2)
    assert refused.value.message == "only 1 left"
    with pytest.raises(LimitReached):
        place_order(sale.pk, first, 2)  # 2 held + 2 > 3, and only 1 left
    assert place_order(sale.pk, second, 1).created
