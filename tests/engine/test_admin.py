"""The admin: staff see sales (with the Redis stock) and orders and can restock; others
are sent to the login page."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from seckill import stock
from seckill.models import Order, OrderStatus, Sale
from seckill.placement import place_order
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)

SALES = reverse("admin:seckill_sale_changelist")
ORDERS = reverse("admin:seckill_order_changelist")


@pytest.fixture(autouse=True)
def plain_static(settings):
    """Plain static storage: the manifest storage used with DEBUG off needs collectstatic."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def staff_client(client):
    admin = get_user_model().objects.create_superuser("boss", password="x")
    client.force_login(admin)
    return client


def sold(strategy: str = "lock", n: int = 2) -> tuple[Sale, list]:
    sale = make_sale(stock=5, strategy=strategy)
    people = [get_user_model().objects.create_user(f"buyer{sale.pk}-{i}") for i in range(n)]
    for person in people:
        place_order(sale.pk, person, 1)
    return sale, people


def row_of(html: str, sale: Sale) -> str:
    marker = reverse("admin:seckill_sale_change", args=[sale.pk])
    start = html.index(marker)
    return html[start : html.index("</tr>", start)]


def test_sale_changelist_shows_redis_stock_or_dash(staff_client, redis_client):
    mirrored, _ = sold()
    bare = make_sale(stock=7)  # nothing sold yet: no mirror
    html = staff_client.get(SALES).content.decode()
    assert '<td class="field-redis_stock">3</td>' in row_of(html, mirrored)
    assert '<td class="field-redis_stock">—</td>' in row_of(html, bare)
    assert '<td class="field-sale_status">live</td>' in row_of(html, bare)


def test_order_changelist_filters_and_searches(staff_client, redis_client):
    sale, people = sold()
    order = Order.objects.get(buyer=people[0])
    Order.objects.filter(buyer=people[1]).update(status=OrderStatus.PAID)

    by_status = staff_client.get(ORDERS, {"status__exact": OrderStatus.PAID}).content.decode()
    assert people[1].username in by_status and people[0].username not in by_status
    by_name = staff_client.get(ORDERS, {"q": people[0].username}).content.decode()
    assert str(order.pk) in by_name and people[1].username not in by_name
    by_id = staff_client.get(ORDERS, {"q": str(order.pk)}).content.decode()
    assert people[0].username in by_id and people[1].username not in by_id
    assert staff_client.get(ORDERS, {"q": "9" * 30}).status_code == 200
    assert staff_client.get(ORDERS, {"q": "²"}).status_code == 200  # isdigit, yet no int: was 500

    change = staff_client.get(reverse("admin:seckill_order_change", args=[order.pk]))
    assert change.status_code == 200
    assert 'name="id"' not in change.content.decode()  # read-only: shown, not editable
    assert staff_client.get(reverse("admin:seckill_order_add")).status_code == 403


def test_reset_action_restocks(staff_client, redis_client):
    sale, _ = sold()
    other, _ = sold()
    response = staff_client.post(
        SALES, {"action": "restock", "_selected_action": [sale.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "1 sale(s) restocked." in response.content.decode()
    sale.refresh_from_db()
    assert sale.stock_left == sale.stock_total == 5
    assert not Order.objects.filter(sale=sale).exists()
    mirror = stock.read_mirror(sale.pk, redis_client)
    assert mirror["stock"] == 5 and mirror["buyers"] == {}
    assert Sale.objects.get(pk=other.pk).stock_left == 3  # not selected: untouched


def test_add_sale_starts_full(staff_client, redis_client):
    template = make_sale(stock=1)
    data = {
        "product": template.product_id,
        "price": "5.00",
        "stock_total": 12,
        "per_user_limit": 1,
        "strategy": "lock",
        "starts_at_0": "2030-01-01",
        "starts_at_1": "10:00:00",
        "ends_at_0": "2030-01-01",
        "ends_at_1": "11:00:00",
    }
    response = staff_client.post(reverse("admin:seckill_sale_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    created = Sale.objects.exclude(pk=template.pk).get()
    assert created.stock_left == 12


@pytest.mark.parametrize("url", [SALES, ORDERS])
def test_non_staff_is_sent_to_login(client, url, redis_client):
    client.force_login(get_user_model().objects.create_user("shopper", password="x"))
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert client.post(SALES, {"action": "restock", "_selected_action": [1]}).status_code == 302


@pytest.fixture
def redis_down(settings):
    """The app's Redis pointed at a port nobody listens on."""
    from devtools.redis_server import free_port
    from seckill.infrastructure.redis_client import get_redis

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    get_redis.cache_clear()
    yield
    get_redis.cache_clear()


def test_changelist_still_opens_without_redis(staff_client, redis_client, redis_down):
    sale = make_sale(stock=3)
    html = staff_client.get(SALES).content.decode()
    assert '<td class="field-redis_stock">unavailable</td>' in row_of(html, sale)
