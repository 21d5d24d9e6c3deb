"""The order API end to end over DRF's test client: statuses, bodies and error codes."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from seckill.models import Order, OrderStatus, Sale
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)


def error_code(response) -> str:
    return response.json()["error"]["code"]


def test_place_pay_and_read_order(make_client):
    sale = make_sale(stock=5, per_user_limit=2)
    client = make_client()
    placed = client.post(f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 2}, format="json")
    assert placed.status_code == 201, placed.json()
    body = placed.json()
    assert isinstance(body["order_id"], str) and body["status"] == "pending_payment"
    assert body["quantity"] == 2 and body["total"] == "19.98" and body["persisted"] is True
    assert body["id_parts"]["worker_id"] >= 0
    detail = client.get(f"/api/v1/orders/{body['order_id']}/")
    assert detail.status_code == 200 and detail.json()["order_id"] == body["order_id"]
    paid = client.post(f"/api/v1/orders/{body['order_id']}/pay/")
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    assert [o["order_id"] for o in client.get("/api/v1/orders/").json()["results"]] == [
        body["order_id"]
    ]
    listing = client.get(f"/api/v1/sales/{sale.pk}/").json()
    assert listing["stock_left"] == 3 and listing["status"] == "live"


def test_idempotency_key_replay_returns_first_order(make_client):
    sale = make_sale(stock=5, per_user_limit=3)
    client = make_client()
    url = f"/api/v1/sales/{sale.pk}/orders/"
    first = client.post(url, {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(url, {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201 and again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["order_id"] == first.json()["order_id"]
    assert Order.objects.count() == 1
    assert Sale.objects.get(pk=sale.pk).stock_left == 4


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("payload", "kwargs"),
    [
        ({"quantity": -1}, {"format": "json"}),
        ({"quantity": 0}, {"format": "json"}),
        ({"quantity": 10**30}, {"format": "json"}),
        ({"quantity": "lots"}, {"format": "json"}),
        ("{not json", {"content_type": "application/json"}),
        ({"quantity": 1}, {"format": "json", "HTTP_IDEMPOTENCY_KEY": "spaces are bad"}),
        # issue 15: loose numbers, and no stated quantity at all, were read as units
        ({"quantity": "2 "}, {"format": "json"}),
        ({"quantity": "\u0661"}, {"format": "json"}),  # ARABIC-INDIC DIGIT ONE
        ({"quantity": 1.0}, {"format": "json"}),
        ({"quantity": True}, {"format": "json"}),
        ({}, {"format": "json"}),
        ("", {"content_type": "application/json"}),
        ("quantity=%C2%B2", {"content_type": "application/x-www-form-urlencoded"}),
        # issue 15: nesting past the recursion limit was a RecursionError (500)
        pytest.param(DEEP, {"content_type": "application/json"}, id="deep-array"),
        pytest.param(
            '{"quantity": ' + DEEP + "}", {"content_type": "application/json"}, id="deep-field"
        ),
    ],
)
def test_bad_input_is_400_invalid_and_changes_nothing(make_client, payload, kwargs):
    sale = make_sale(stock=5)
    response = make_client().post(f"/api/v1/sales/{sale.pk}/orders/", payload, **kwargs)
    assert response.status_code == 400
    assert error_code(response) == "invalid" and response.json()["error"]["message"]
    assert Order.objects.count() == 0 and Sale.objects.get(pk=sale.pk).stock_left == 5


def test_unknown_sale_is_404(make_client):
    response = make_client().post("/api/v1/sales/999999/orders/", {"quantity": 1}, format="json")
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_not_live_sales_are_409(make_client):
    upcoming = make_sale(starts_in=timezone.timedelta(hours=1))
    ended = make_sale(starts_in=timezone.timedelta(hours=-2), lasts=timezone.timedelta(hours=1))
    client = make_client()
    for sale in (upcoming, ended):
        response = client.post(f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 1}, format="json")
        assert response.status_code == 409 and error_code(response) == "not_live"


def test_sold_out_and_limit_reached_are_409(make_client):
    sale = make_sale(stock=2, per_user_limit=1)
    first, second, third = make_client("a"), make_client("b"), make_client("c")
    url = f"/api/v1/sales/{sale.pk}/orders/"
    assert first.post(url, {"quantity": 1}, format="json").status_code == 201
    again = first.post(url, {"quantity": 1}, format="json")
    assert again.status_code == 409 and error_code(again) == "limit_reached"
    assert third.post(url, {"quantity": 1}, format="json").status_code == 201
    late = second.post(url, {"quantity": 1}, format="json")
    assert late.status_code == 409 and error_code(late) == "sold_out"
    assert client_sale(second, sale)["status"] == "sold_out"


def client_sale(client, sale) -> dict:
    return client.get(f"/api/v1/sales/{sale.pk}/").json()


def test_anonymous_is_401_and_others_orders_are_404(make_client):
    sale = make_sale(stock=5)
    owner, stranger = make_client("owner"), make_client("stranger")
    order_id = owner.post(f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 1}, format="json")
    order_id = order_id.json()["order_id"]
    anonymous = APIClient().post(f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 1})
    assert anonymous.status_code == 401 and error_code(anonymous) == "unauthenticated"
    for path in ("", "pay/", "cancel/"):
        call = stranger.get if not path else stranger.post
        response = call(f"/api/v1/orders/{order_id}/{path}")
        assert response.status_code == 404 and error_code(response) == "not_found"
    assert Order.objects.get(pk=order_id).status == OrderStatus.PENDING_PAYMENT
    for bogus in ("abc", "-5", "0", str(2**70)):
        assert owner.get(f"/api/v1/orders/{bogus}/").status_code == 404


def test_cancel_returns_stock_and_cannot_be_paid(make_client):
    sale = make_sale(stock=2)
    client = make_client()
    order_id = client.post(f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 1}, format="json")
    order_id = order_id.json()["order_id"]
    cancelled = client.post(f"/api/v1/orders/{order_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert Sale.objects.get(pk=sale.pk).stock_left == 2
    pay = client.post(f"/api/v1/orders/{order_id}/pay/")
    assert pay.status_code == 409 and error_code(pay) == "invalid_state"
    assert client.post(f"/api/v1/orders/{order_id}/cancel/").status_code == 200  # idempotent
    assert Sale.objects.get(pk=sale.pk).stock_left == 2


def test_staff_creates_and_resets_sales_buyers_cannot(make_client):
    staff, buyer = make_client("boss", staff=True), make_client("buyer")
    product = make_sale().product
    now = timezone.now()
    payload = {
        "product_id": product.pk,
        "price": "5.00",
        "starts_at": now.isoformat(),
        "ends_at": (now + timezone.timedelta(hours=1)).isoformat(),
        "stock_total": 7,
        "per_user_limit": 2,
        "strategy": "redis_atomic",
    }
    refused = buyer.post("/api/v1/sales/", payload, format="json")
    assert refused.status_code == 403 and error_code(refused) == "forbidden"
    created = staff.post("/api/v1/sales/", payload, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["stock_left"] == 7 and created.json()["strategy"] == "redis_atomic"
    bad = staff.post("/api/v1/sales/", {**payload, "ends_at": payload["starts_at"]}, format="json")
    assert bad.status_code == 400 and "ends_at" in bad.json()["error"]["fields"]
    sale_id = created.json()["id"]
    assert buyer.post(f"/api/v1/sales/{sale_id}/reset/").status_code == 403
    reset = staff.post(f"/api/v1/sales/{sale_id}/reset/", {"stock_total": 9}, format="json")
    assert reset.status_code == 200 and reset.json()["stock_left"] == 9


def test_register_and_token(db, redis_client):
    client = APIClient()
    created = client.post(
        "/api/v1/auth/register/", {"username": "newbie", "password": "a-long-passphrase-42"}
    )
    assert created.status_code == 201 and created.json()["token"]
    taken = client.post(
        "/api/v1/auth/register/", {"username": "NEWBIE", "password": "a-long-passphrase-42"}
    )
    assert taken.status_code == 400 and "username" in taken.json()["error"]["fields"]
    weak = client.post("/api/v1/auth/register/", {"username": "weak", "password": "123"})
    assert weak.status_code == 400 and "password" in weak.json()["error"]["fields"]
    token = client.post(
        "/api/v1/auth/token/", {"username": "newbie", "password": "a-long-passphrase-42"}
    )
    assert token.json()["token"] == created.json()["token"]
    wrong = client.post("/api/v1/auth/token/", {"username": "newbie", "password": "nope"})
    assert wrong.status_code == 401 and error_code(wrong) == "unauthenticated"


def test_schema_and_docs_are_served(db):
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/sales/{id}/orders/" in paths
    assert client.get("/api/docs/").status_code == 200


def test_hidden_purchase_path(make_client):
    """require_purchase_token: no token, a bogus one or a used one buys nothing."""
    sale = make_sale(stock=5, per_user_limit=3)
    Sale.objects.filter(pk=sale.pk).update(require_purchase_token=True)
    client, other = make_client("a"), make_client("b")
    url = f"/api/v1/sales/{sale.pk}/orders/"
    bare = client.post(url, {"quantity": 1}, format="json")
    assert bare.status_code == 403 and error_code(bare) == "purchase_token"
    issued = client.post(f"/api/v1/sales/{sale.pk}/purchase-token/")
    assert issued.status_code == 201 and issued.json()["expires_in"] > 0
    token = issued.json()["token"]
    stolen = other.post(url, {"quantity": 1}, format="json", HTTP_PURCHASE_TOKEN=token)
    assert stolen.status_code == 403  # tokens are per buyer
    first = client.post(url, {"quantity": 1}, format="json", HTTP_PURCHASE_TOKEN=token)
    assert first.status_code == 201
    reused = client.post(url, {"quantity": 1}, format="json", HTTP_PURCHASE_TOKEN=token)
    assert reused.status_code == 403  # single use
    assert Order.objects.filter(sale=sale).count() == 1
    assert Sale.objects.get(pk=sale.pk).stock_left == 4


def test_purchase_tokens_only_while_live(make_client):
    sale = make_sale(starts_in=timezone.timedelta(minutes=5))
    response = make_client().post(f"/api/v1/sales/{sale.pk}/purchase-token/")
    assert response.status_code == 409 and error_code(response) == "not_live"


def test_register_checks_the_name_as_it_will_be_stored(db, redis_client):
    """Full-width "ｓｔａｆｆ" is "staff" once NFKC-normalised: taken (400), not a 503 from the
    database's unique index; a free full-width name is stored normalised."""
    get_user_model().objects.create_user("staff", password="a-long-passphrase-42")
    client = APIClient()
    taken = client.post(
        "/api/v1/auth/register/", {"username": "ｓｔａｆｆ", "password": "a-long-passphrase-42"}
    )
    assert taken.status_code == 400 and "username" in taken.json()["error"]["fields"]
    fresh = client.post(
        "/api/v1/auth/register/", {"username": "ｂｏｂ", "password": "a-long-passphrase-42"}
    )
    assert fresh.status_code == 201
    assert get_user_model().objects.filter(username="bob").exists()


def test_a_busy_refusal_does_not_burn_the_purchase_token(make_client, settings):
    """429 busy says a retry is safe: the retry with the same token (and key) must buy."""
    from seckill.item_locks import item_lock

    settings.SECKILL_LOCK_WAIT = 0.05
    sale = make_sale(stock=5, per_user_limit=1)
    Sale.objects.filter(pk=sale.pk).update(require_purchase_token=True)
    client = make_client()
    token = client.post(f"/api/v1/sales/{sale.pk}/purchase-token/").json()["token"]
    url, headers = f"/api/v1/sales/{sale.pk}/orders/", {"HTTP_PURCHASE_TOKEN": token}
    held = item_lock(sale.pk)
    assert held.acquire(blocking=False)
    try:
        busy = client.post(url, {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k", **headers)
    finally:
        held.release()
    assert busy.status_code == 429 and error_code(busy) == "busy"
    placed = client.post(url, {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k", **headers)
    assert placed.status_code == 201, placed.json()
    again = client.post(url, {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k2", **headers)
    assert again.status_code == 403  # spent by the order it bought


@pytest.mark.parametrize("raw", ["²", "①", "١", "１"])
@pytest.mark.parametrize("action", ["", "pay/", "cancel/"])
def test_non_ascii_digits_are_no_order_id(make_client, raw, action):
    """str.isdigit() says yes to these and int() then refused them: a 500 before."""
    client = make_client()
    path = f"/api/v1/orders/{raw}/{action}"
    response = client.post(path) if action else client.get(path)
    assert response.status_code == 404 and error_code(response) == "not_found"
