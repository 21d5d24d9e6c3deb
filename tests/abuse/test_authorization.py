"""Authorization: nobody reads, pays or cancels another buyer's order (404, never 403, so ids
do not leak), staff-only endpoints refuse buyers and anonymous clients, the admin needs staff,
and purchase tokens are bound to one buyer, one sale and a short life.

tests/api/test_orders_api.py already covers persisted orders of another buyer, buyers creating
or resetting sales, stolen and reused purchase tokens and tokens before the sale is live; these
tests add what it does not.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from seckill.models import Order, Sale
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)


def code(response) -> str:
    return response.json()["error"]["code"]


def test_queued_redis_atomic_order_is_invisible_to_others(
    make_client, redis_client, persist_tasks_held
):
    """A redis_atomic order still queued in Redis (its task held back) is served from Redis to
    its owner; to anyone else it does not exist — read, pay and cancel are all 404."""
    sale = make_sale(stock=5, strategy="redis_atomic")
    owner, stranger = make_client("owner"), make_client("stranger")
    placed = owner.post(f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 1}, format="json")
    assert placed.status_code == 202
    order_id = placed.json()["order_id"]
    assert owner.get(f"/api/v1/orders/{order_id}/").json()["persisted"] is False
    for path in ("", "pay/", "cancel/"):
        response = (stranger.post if path else stranger.get)(f"/api/v1/orders/{order_id}/{path}")
        assert response.status_code == 404 and code(response) == "not_found", path
    assert not Order.objects.filter(pk=order_id).exists()  # still queued, untouched


def test_order_list_shows_only_the_callers_orders(make_client, redis_client):
    sale = make_sale(stock=5, per_user_limit=2)
    alice, bob = make_client("alice"), make_client("bob")
    mine = {
        alice.post(f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 1}, format="json").json()[
            "order_id"
        ]
        for _ in range(2)
    }
    bob.post(f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 1}, format="json")
    assert {o["order_id"] for o in alice.get("/api/v1/orders/").json()["results"]} == mine
    assert len(bob.get("/api/v1/orders/").json()["results"]) == 1


def test_anonymous_clients_get_401_on_everything_but_reading_sales(redis_client):
    sale = make_sale()
    anon = APIClient()
    assert anon.get("/api/v1/sales/").status_code == 200
    for method, path in [
        ("post", "/api/v1/sales/"),
        ("post", f"/api/v1/sales/{sale.pk}/reset/"),
        ("post", f"/api/v1/sales/{sale.pk}/orders/"),
        ("post", f"/api/v1/sales/{sale.pk}/purchase-token/"),
        ("get", "/api/v1/orders/"),
        ("get", "/api/v1/orders/1/"),
    ]:
        response = getattr(anon, method)(path, {}, format="json")
        assert response.status_code == 401 and code(response) == "unauthenticated", path
    bogus = APIClient(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert bogus.get("/api/v1/orders/").status_code == 401
    assert Sale.objects.get(pk=sale.pk).stock_left == sale.stock_total


def test_admin_requires_staff(redis_client):
    """A signed-in buyer is sent to the admin login (and cannot sign in there); staff get in."""
    users = get_user_model().objects
    users.create_user("buyer", password="pw-1234-long")
    users.create_user("boss", password="pw-1234-long", is_staff=True, is_superuser=True)
    buyer = Client()
    assert buyer.login(username="buyer", password="pw-1234-long")
    for path in ("/admin/", "/admin/seckill/sale/", "/admin/seckill/order/"):
        response = buyer.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], path
    form = Client().post("/admin/login/", {"username": "buyer", "password": "pw-1234-long"})
    assert form.status_code == 200  # the form again, with an error: not a staff account
    boss = Client()
    assert boss.login(username="boss", password="pw-1234-long")
    assert boss.get("/admin/seckill/sale/").status_code == 200


def test_purchase_token_is_bound_to_its_sale(make_client, redis_client):
    """A token fetched for one sale does not open another sale's hidden path."""
    first, second = make_sale(stock=5), make_sale(stock=5)
    Sale.objects.filter(pk__in=[first.pk, second.pk]).update(require_purchase_token=True)
    buyer = make_client()
    token = buyer.post(f"/api/v1/sales/{first.pk}/purchase-token/").json()["token"]
    wrong = buyer.post(
        f"/api/v1/sales/{second.pk}/orders/",
        {"quantity": 1},
        format="json",
        HTTP_PURCHASE_TOKEN=token,
    )
    assert wrong.status_code == 403 and code(wrong) == "purchase_token"
    assert Sale.objects.get(pk=second.pk).stock_left == 5


def test_purchase_token_expires(make_client, redis_client, settings):
    """A token not used within SECKILL_PURCHASE_TOKEN_TTL buys nothing."""
    settings.SECKILL_PURCHASE_TOKEN_TTL = 1
    sale = make_sale(stock=5)
    Sale.objects.filter(pk=sale.pk).update(require_purchase_token=True)
    buyer = make_client()
    issued = buyer.post(f"/api/v1/sales/{sale.pk}/purchase-token/").json()
    assert issued["expires_in"] == 1
    time.sleep(2.2)
    late = buyer.post(
        f"/api/v1/sales/{sale.pk}/orders/",
        {"quantity": 1},
        format="json",
        HTTP_PURCHASE_TOKEN=issued["token"],
    )
    assert late.status_code == 403 and code(late) == "purchase_token"
    assert Order.objects.count() == 0
