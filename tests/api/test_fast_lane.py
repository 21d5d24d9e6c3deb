"""The order endpoint's fast lane (seckill.api.fast_lane): a token-authenticated order skips
the middleware it never uses and URL resolution, and is answered exactly as the full chain
answers it; every other request takes the full chain."""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)

SEEN: list[str] = []


class RecordingMiddleware:
    """Stands below the fast lane: records each request the full chain handled."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        SEEN.append(request.path)
        return self.get_response(request)


@pytest.fixture
def recorded(settings):
    """The project's middleware with a recorder right below the fast lane."""
    lane = settings.MIDDLEWARE.index("seckill.api.fast_lane.OrderFastLane")
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(lane + 1, f"{__name__}.RecordingMiddleware")
    SEEN.clear()
    with override_settings(MIDDLEWARE=middleware):
        yield SEEN


def order(client, path: str, **extra):
    return client.post(path, {"quantity": 1}, format="json", **extra)


def test_a_token_order_skips_the_chain_below_and_other_requests_do_not(make_client, recorded):
    sale = make_sale(stock=5, strategy="lock", per_user_limit=5)
    buyer = make_client()
    path = f"/api/v1/sales/{sale.pk}/orders/"
    assert order(buyer, path).status_code == 201
    assert recorded == []
    assert buyer.get(f"/api/v1/sales/{sale.pk}/").status_code == 200
    assert order(buyer, f"/api/v1/sales/{sale.pk}/purchase-token/").status_code in (409, 201)
    session = APIClient()
    session.force_login(buyer.user)  # no token header: the session, its CSRF check, the chain
    assert order(session, path).status_code in (201, 403)
    sale_path = f"/api/v1/sales/{sale.pk}/"
    assert recorded == [sale_path, f"{sale_path}purchase-token/", path]


@pytest.mark.parametrize("strategy", ["lock", "redis_atomic"])
def test_the_lane_answers_as_the_full_chain_does(strategy, make_client, settings):
    sale = make_sale(stock=1, strategy=strategy, per_user_limit=1)
    first, late = make_client("first"), make_client("late")
    path = f"/api/v1/sales/{sale.pk}/orders/"
    assert order(first, path).status_code in (201, 202)
    fast = order(late, path)
    with override_settings(
        MIDDLEWARE=[m for m in settings.MIDDLEWARE if not m.endswith("OrderFastLane")]
    ):
        full = order(late, path)
    assert fast.status_code == full.status_code == 409
    assert fast.json() == full.json()
    for header in (
        "Content-Type",
        "Content-Length",
        "X-Frame-Options",
        "X-Content-Type-Options",
        "Referrer-Policy",
        "Content-Security-Policy",
    ):
        assert fast.headers.get(header) == full.headers.get(header), header
    assert fast.headers["Content-Length"] == str(len(fast.content))


def test_bad_orders_through_the_lane_get_the_usual_errors(make_client):
    sale = make_sale(stock=5, strategy="lock")
    buyer = make_client()
    path = f"/api/v1/sales/{sale.pk}/orders/"
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    refused = order(bad_token, path)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"
    missing = order(buyer, "/api/v1/sales/999999999/orders/")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    not_ascii = order(buyer, "/api/v1/sales/\uff11/orders/")  # a fullwidth 1: no route at all
    assert not_ascii.status_code == 404
    foreign_host = order(buyer, path, HTTP_HOST="evil.example")
    assert foreign_host.status_code == 400
