"""The sales list, the sale page and the buy button over Django's test client, error paths too."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import redis
from django.contrib.auth import get_user_model
from django.test import Client
from redis.backoff import NoBackoff
from redis.retry import Retry

from seckill import stock
from seckill.ids import parse_order_id
from seckill.item_locks import item_lock
from seckill.keys import sale_keys
from seckill.models import Order, Sale
from seckill.placement import place_order
from tests.engine.factories import make_sale
from tests.pages.conftest import hidden_value

pytestmark = pytest.mark.django_db


def buy(client: Client, sale: Sale, key: str = "web-k1", quantity: object = 1):
    return client.post(f"/sales/{sale.pk}/buy/", {"quantity": quantity, "idempotency_key": key})


def error_code(response) -> str | None:
    found = re.search(r'role="alert" data-error-code="([a-z_]+)"', response.content.decode())
    return found.group(1) if found else None


def buy_button(html: str) -> str:
    found = re.search(r"<button[^>]*data-buy-button[^>]*>", html)
    assert found, "no buy button"
    return found.group(0)


def test_home_lists_sales_with_live_status_and_redis_stock(client, redis_client):
    live = make_sale(stock=5)
    upcoming = make_sale(stock=7, starts_in=timedelta(hours=1))
    stock.load_mirror(live)
    redis_client.set(sale_keys(live.pk).stock, 3)  # Redis leads the DB (e.g. redis_atomic)
    html = client.get("/").content.decode()
    assert live.product.name in html and upcoming.product.name in html
    assert f'href="/sales/{live.pk}/"' in html
    assert re.search(rf'data-sale-id="{live.pk}" data-status="live"', html)
    assert re.search(rf'data-sale-id="{upcoming.pk}" data-status="upcoming"', html)
    assert '<span data-field="stock_left">3</span> / 5 left' in html
    assert '<span data-field="stock_left">7</span> / 7 left' in html
    assert "Live now" in html and "Starts soon" in html
    assert 'data-api-url="/api/v1/sales/"' in html
    opens = upcoming.starts_at.isoformat()
    assert f'"upcoming">opens in <time data-countdown datetime="{opens}"' in html


def test_upcoming_sale_page_counts_down_with_the_button_disabled(login):
    sale = make_sale(stock=4, strategy="lock_fenced", starts_in=timedelta(seconds=30))
    response = login().get(f"/sales/{sale.pk}/")
    html = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    assert "disabled" in buy_button(html)
    assert f'data-countdown datetime="{sale.starts_at.isoformat()}"' in html
    assert "Starts in" in html and 'data-status="upcoming"' in html
    assert "<code>lock_fenced</code>" in html and "fencing token" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert hidden_value(html, "idempotency_key").startswith("web-")
    assert '<label for="id_quantity">Quantity</label>' in html
    assert f'data-api-url="/api/v1/sales/{sale.pk}/"' in html


def test_live_sale_page_enables_the_button_and_draws_a_fresh_key_each_time(login):
    sale = make_sale(stock=4)
    client = login()
    first = client.get(f"/sales/{sale.pk}/").content.decode()
    second = client.get(f"/sales/{sale.pk}/").content.decode()
    assert "disabled" not in buy_button(first)
    assert hidden_value(first, "idempotency_key") != hidden_value(second, "idempotency_key")
    assert "After you buy, this panel shows" in first


def test_anonymous_visitor_is_asked_to_log_in(client):
    sale = make_sale()
    html = client.get(f"/sales/{sale.pk}/").content.decode()
    assert f'href="/accounts/login/?next=/sales/{sale.pk}/"' in html
    assert "data-buy-button" not in html
    response = buy(client, sale)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/sales/{sale.pk}/"
    assert not Order.objects.exists()


def test_unknown_sale_is_404(client):
    assert client.get("/sales/999999/").status_code == 404


def test_buy_redirects_to_the_order_and_the_panel_explains_it(login):
    sale = make_sale(stock=3, strategy="lock_fenced")
    client = login()
    response = buy(client, sale)
    order = Order.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/orders/{order.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert str(order.pk) in page and "Pending payment" in page
    deadline = order.pay_by.isoformat()
    assert f'data-countdown data-done-text="time is up" datetime="{deadline}"' in page

    sale_page = client.get(f"/sales/{sale.pk}/").content.decode()
    parts = parse_order_id(order.pk)
    assert "Your last purchase" in sale_page
    assert re.search(r'data-fact="lock-wait">\d+\.\d\d ms waiting', sale_page)
    assert f'data-fact="fence">{order.fence},' in sale_page
    assert f'data-fact="id-worker">{parts.worker_id}<' in sale_page
    assert f'data-fact="id-sequence">{parts.sequence}<' in sale_page
    assert parts.datetime.strftime("%Y-%m-%d %H:%M:%S") in sale_page


def test_plain_lock_panel_shows_the_fence_of_the_lock_held(login):
    """Strategy lock records the fence of the lock held (unchecked); the panel shows that one."""
    sale = make_sale(stock=3, strategy="lock")
    client = login()
    buy(client, sale)
    order = Order.objects.get()
    assert order.fence is not None
    page = client.get(f"/sales/{sale.pk}/").content.decode()
    assert f'data-fact="fence">{order.fence}, the fencing token' in page


def test_double_submit_and_refresh_resubmit_replay_the_first_order(login):
    sale = make_sale(stock=5, per_user_limit=3)
    client = login()
    key = hidden_value(client.get(f"/sales/{sale.pk}/").content.decode(), "idempotency_key")
    first = buy(client, sale, key)
    again = buy(client, sale, key)
    assert first.status_code == again.status_code == 302
    assert first["Location"] == again["Location"]
    assert Order.objects.count() == 1
    assert Sale.objects.get(pk=sale.pk).stock_left == 4
    page = client.get(again["Location"]).content.decode()
    assert "You had already placed this order" in page
    # A new page (new key) is a new purchase intent, allowed by the limit of 3.
    assert buy(client, sale, "web-other")["Location"] != first["Location"]
    assert Order.objects.count() == 2


def test_sold_out(login):
    sale = make_sale(stock=1)
    place_order(sale.pk, get_user_model().objects.create_user("early"), 1)
    client = login()
    response = buy(client, sale, "web-late")
    assert response.status_code == 409 and error_code(response) == "sold_out"
    html = response.content.decode()
    assert "Sold out" in html and "Every unit has been sold" in html
    assert "disabled" in buy_button(html)
    assert hidden_value(html, "idempotency_key") == "web-late"  # a retry can only replay


def test_limit_reached(login):
    sale = make_sale(stock=5, per_user_limit=1)
    response = buy(login(), sale, quantity=2)
    assert response.status_code == 409 and error_code(response) == "limit_reached"
    html = response.content.decode()
    assert "Limit reached" in html and "you may buy at most 1 of this sale" in html.lower()
    assert not Order.objects.exists()


def test_limit_reached_after_an_earlier_order(login):
    sale = make_sale(stock=5, per_user_limit=1)
    client = login()
    buy(client, sale, "web-a")
    response = buy(client, sale, "web-b")
    assert response.status_code == 409 and error_code(response) == "limit_reached"
    assert Order.objects.count() == 1


def test_not_live(login):
    sale = make_sale(starts_in=timedelta(minutes=5))
    response = buy(login(), sale)
    assert response.status_code == 409 and error_code(response) == "not_live"
    assert "Buying opens when the countdown reaches zero" in response.content.decode()
    assert not Order.objects.exists()


def test_busy_when_the_item_lock_is_held(login):
    sale = make_sale(stock=5)
    holder = item_lock(sale.pk, watchdog=False)
    assert holder.acquire()
    try:
        response = buy(login(), sale)
    finally:
        holder.release()
    assert response.status_code == 429 and error_code(response) == "busy"
    assert response["Retry-After"] == "1"
    html = response.content.decode()
    assert "Too many buyers at this moment" in html and "Try again in 1 s" in html
    assert not Order.objects.exists()


def test_unavailable_when_redis_is_down(login, monkeypatch):
    sale = make_sale(stock=5)
    dead = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr("seckill.stock.get_redis", lambda: dead)
    monkeypatch.setattr("seckill.item_locks.get_redis", lambda: dead)
    response = buy(login(), sale)
    assert response.status_code == 503 and error_code(response) == "unavailable"
    html = response.content.decode()
    assert "nothing was sold" in html and sale.product.name in html
    assert not Order.objects.exists()


def test_invalid_quantity(login):
    sale = make_sale()
    response = buy(login(), sale, quantity="lots")
    assert response.status_code == 400 and error_code(response) == "invalid"
    assert 'aria-invalid="true"' in response.content.decode()


def test_buy_needs_csrf_token(make_user):
    sale = make_sale()
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user())
    assert buy(client, sale).status_code == 403
    assert not Order.objects.exists()


def test_buy_is_post_only(login):
    sale = make_sale()
    assert login().get(f"/sales/{sale.pk}/buy/").status_code == 405


def test_purchase_token_sale(login):
    """Sales with require_purchase_token: the form carries the token the page's script fetched
    from the API; without one the buyer is told what is missing."""
    from seckill import purchase_token

    sale = make_sale(stock=3)
    Sale.objects.filter(pk=sale.pk).update(require_purchase_token=True)
    sale.refresh_from_db()
    client = login()
    html = client.get(f"/sales/{sale.pk}/").content.decode()
    assert f'data-token-url="/api/v1/sales/{sale.pk}/purchase-token/"' in html
    assert 'name="purchase_token"' in html

    refused = buy(client, sale, "web-t1")
    assert refused.status_code == 403 and error_code(refused) == "purchase_token"
    assert "This sale needs a purchase pass" in refused.content.decode()

    token, _ = purchase_token.issue(sale, client.user.pk)
    placed = client.post(
        f"/sales/{sale.pk}/buy/",
        {"quantity": 1, "idempotency_key": "web-t1", "purchase_token": token},
    )
    assert placed.status_code == 302 and Order.objects.count() == 1


@pytest.mark.parametrize("scope", ["order", "order_ip"])
def test_the_apis_placement_rate_limits_apply_to_the_buy_form(login, settings, scope, redis_client):
    """Per buyer and per address, as the API: the second form post within the hour is 429."""
    api = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {
        **api,
        "DEFAULT_THROTTLE_RATES": {**api["DEFAULT_THROTTLE_RATES"], scope: "1/hour"},
    }
    client, sale = login(), make_sale(stock=5, per_user_limit=2)
    assert buy(client, sale, "web-r1").status_code == 302
    response = buy(client, sale, "web-r2")
    assert response.status_code == 429 and error_code(response) == "busy"
    assert 3500 < int(response["Retry-After"]) <= 3600
    assert "placed orders too quickly" in response.content.decode()
    assert Order.objects.count() == 1
