"""The order page, pay and cancel, and my orders."""

from __future__ import annotations

import pytest
from django.utils import timezone

from seckill.models import Order, OrderStatus, Sale
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db


def place(client, sale: Sale, key: str = "web-k1") -> int:
    response = client.post(f"/sales/{sale.pk}/buy/", {"quantity": 1, "idempotency_key": key})
    assert response.status_code == 302, response.content.decode()[:2000]
    return int(response["Location"].strip("/").split("/")[-1])


def test_order_page_shows_status_deadline_and_actions(login):
    sale = make_sale(stock=3)
    client = login()
    order_id = place(client, sale)
    html = client.get(f"/orders/{order_id}/").content.decode()
    assert f'data-field="order-id">{order_id}<' in html
    assert "Pending payment" in html and "Pay by" in html and 'role="timer"' in html
    assert f'action="/orders/{order_id}/pay/"' in html
    assert f'action="/orders/{order_id}/cancel/"' in html
    assert "<code>lock</code>" in html  # the how-it-works panel is on the order page too


def test_pay(login):
    sale = make_sale(stock=3)
    client = login()
    order_id = place(client, sale)
    response = client.post(f"/orders/{order_id}/pay/", follow=True)
    html = response.content.decode()
    assert response.redirect_chain == [(f"/orders/{order_id}/", 302)]
    assert Order.objects.get(pk=order_id).status == OrderStatus.PAID
    assert "Paid. Thank you!" in html and "badge--paid" in html
    assert f'action="/orders/{order_id}/pay/"' not in html


def test_cancel_returns_the_units(login):
    sale = make_sale(stock=3)
    client = login()
    order_id = place(client, sale)
    html = client.post(f"/orders/{order_id}/cancel/", follow=True).content.decode()
    assert Order.objects.get(pk=order_id).status == OrderStatus.CANCELLED
    assert Sale.objects.get(pk=sale.pk).stock_left == 3
    assert "Cancelled; the units went back on sale." in html


def test_paying_a_cancelled_order_explains_why_not(login):
    sale = make_sale(stock=3)
    client = login()
    order_id = place(client, sale)
    client.post(f"/orders/{order_id}/cancel/")
    html = client.post(f"/orders/{order_id}/pay/", follow=True).content.decode()
    assert "That can&#x27;t be done now" in html and "a cancelled order cannot be paid" in html
    assert Order.objects.get(pk=order_id).status == OrderStatus.CANCELLED


def test_paying_after_the_window_closed_is_refused(login):
    sale = make_sale(stock=3)
    client = login()
    order_id = place(client, sale)
    Order.objects.filter(pk=order_id).update(pay_by=timezone.now())
    html = client.post(f"/orders/{order_id}/pay/", follow=True).content.decode()
    assert "the payment window has closed" in html
    assert Order.objects.get(pk=order_id).status == OrderStatus.EXPIRED


def test_someone_elses_order_is_not_found(login):
    sale = make_sale(stock=3)
    order_id = place(login("owner"), sale)
    other = login("other")
    assert other.get(f"/orders/{order_id}/").status_code == 404
    assert other.post(f"/orders/{order_id}/pay/").status_code == 404
    assert other.post(f"/orders/{order_id}/cancel/").status_code == 404
    assert Order.objects.get(pk=order_id).status == OrderStatus.PENDING_PAYMENT


@pytest.mark.parametrize("path", ["/orders/99999999999999999999/", "/orders/0/", "/orders/x/"])
def test_impossible_order_ids_are_not_found(login, path):
    assert login().get(path).status_code == 404


def test_order_pages_need_login(client):
    response = client.get("/orders/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/orders/"
    assert client.post("/orders/1/pay/").status_code == 302


def test_pay_and_cancel_are_post_only(login):
    sale = make_sale(stock=3)
    client = login()
    order_id = place(client, sale)
    assert client.get(f"/orders/{order_id}/pay/").status_code == 405
    assert client.get(f"/orders/{order_id}/cancel/").status_code == 405


def test_my_orders_lists_only_mine(login):
    sale = make_sale(stock=5)
    mine = login("me")
    first, second = place(mine, sale, "web-1"), None
    sale2 = make_sale(stock=5)
    second = place(mine, sale2, "web-2")
    theirs = place(login("them"), sale, "web-3")
    html = mine.get("/orders/").content.decode()
    assert html.index(str(second)) < html.index(str(first))  # newest first
    assert str(theirs) not in html
    assert sale.product.name in html and "Pending payment" in html


def test_redis_atomic_order_page_while_still_queued(login, persist_tasks_held):
    """Accepted in Redis, not yet in the database (its task held back): the page says so,
    offers no payment yet and refreshes itself."""
    sale = make_sale(stock=3, strategy="redis_atomic")
    client = login()
    order_id = place(client, sale)
    assert not Order.objects.filter(pk=order_id).exists()
    html = client.get(f"/orders/{order_id}/").content.decode()
    assert "Being recorded…" in html and 'data-reload-after="1500"' in html
    assert f'action="/orders/{order_id}/pay/"' not in html
    assert "Accepted in Redis; a Celery worker is writing it" in html
