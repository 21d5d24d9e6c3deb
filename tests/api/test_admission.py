"""The order endpoint's admission gate (seckill.admission): before the strategy's own work, ONE
Redis round trip and no database query decide who is buying, both throttles, and (sold out,
redis_atomic) the answer itself; revocations, throttles and outages behave as before; a replay
asking for another quantity is 422 ``idempotency_mismatch``."""

from __future__ import annotations

import logging
import time

import pytest
from rest_framework.authtoken.models import Token

from seckill import rate_limit
from seckill.models import Order, Sale
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)


def order(client, sale, quantity: int = 1, **headers):
    return client.post(
        f"/api/v1/sales/{sale.pk}/orders/", {"quantity": quantity}, format="json", **headers
    )


@pytest.fixture
def trips(redis_round_trips):
    """The round trips that name the token cache, a throttle key or a sale's keys."""

    def watch(sale: Sale) -> dict[str, list[bytes]]:
        return {
            "token": redis_round_trips(b"auth:token:"),
            "throttle": redis_round_trips(b"throttle:order_ip:"),
            "sale": redis_round_trips(f"{{sale:{sale.pk}}}".encode()),
        }

    return watch


def one_round_trip(watched: dict[str, list[bytes]]) -> None:
    """Token, throttles and sale went out together, in exactly one packet."""
    assert [len(sent) for sent in watched.values()] == [1, 1, 1], watched
    assert watched["token"] == watched["throttle"] == watched["sale"]


@pytest.mark.parametrize("strategy", ["lock", "lock_fenced", "db_row_lock", "redis_atomic"])
def test_sold_out_is_one_round_trip_and_no_query(
    strategy, make_client, trips, django_assert_num_queries
):
    sale = make_sale(stock=1, strategy=strategy)
    first, late = make_client("first"), make_client("late")
    assert order(first, sale).status_code in (201, 202)  # the last unit; warms the caches
    assert order(late, sale).json()["error"]["code"] == "sold_out"  # late's token is cached now
    watched = trips(sale)
    with django_assert_num_queries(0):
        response = order(late, sale, HTTP_IDEMPOTENCY_KEY="late-1")
    assert response.status_code == 409
    assert response.json() == {"error": {"code": "sold_out", "message": "this sale is sold out"}}
    one_round_trip(watched)


def test_redis_atomic_order_is_decided_and_handed_off_in_one_round_trip(
    make_client, trips, django_assert_num_queries
):
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=5)
    buyer = make_client()
    assert order(buyer, sale).status_code == 202  # warms the token cache and the mirror
    watched = trips(sale)
    with django_assert_num_queries(0):
        response = order(buyer, sale, HTTP_IDEMPOTENCY_KEY="k-2")
    assert response.status_code == 202
    assert response.json()["persisted"] is False
    one_round_trip(watched)
    assert Sale.objects.get(pk=sale.pk).stock_left == 5  # the database write is Celery's


@pytest.mark.parametrize("strategy", ["lock", "db_row_lock", "redis_atomic", "unsafe"])
def test_a_replay_asking_for_another_quantity_is_422(strategy, make_client):
    sale = make_sale(stock=10, strategy=strategy, per_user_limit=5)
    buyer = make_client()
    first = order(buyer, sale, 2, HTTP_IDEMPOTENCY_KEY="pay-1")
    assert first.status_code in (201, 202)
    mismatch = order(buyer, sale, 3, HTTP_IDEMPOTENCY_KEY="pay-1")
    assert mismatch.status_code == 422
    assert mismatch.json()["error"]["code"] == "idempotency_mismatch"
    assert "order of 2" in mismatch.json()["error"]["message"]
    same = order(buyer, sale, 2, HTTP_IDEMPOTENCY_KEY="pay-1")
    assert same.status_code == 200
    assert same.json()["order_id"] == first.json()["order_id"]


@pytest.mark.parametrize("strategy", ["lock", "redis_atomic"])
def test_a_sold_out_sale_still_replays_the_order_that_took_the_last_unit(strategy, make_client):
    sale = make_sale(stock=1, strategy=strategy)
    first, other = make_client("first"), make_client("other")
    placed = order(first, sale, HTTP_IDEMPOTENCY_KEY="last")
    assert placed.status_code in (201, 202)
    assert order(other, sale, HTTP_IDEMPOTENCY_KEY="last").status_code == 409  # not its key
    replay = order(first, sale, HTTP_IDEMPOTENCY_KEY="last")
    assert replay.status_code == 200
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json()["order_id"] == placed.json()["order_id"]
    assert order(first, sale, HTTP_IDEMPOTENCY_KEY="another").status_code == 409


@pytest.mark.parametrize("revoke", ["delete_token", "deactivate_user"])
def test_a_revoked_token_buys_nothing_and_is_not_charged(revoke, make_client, redis_client):
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=5)
    buyer = make_client()
    assert order(buyer, sale).status_code == 202  # the token is cached from here on
    throttle_key = rate_limit.scoped_key("order", f"u{buyer.user.pk}")
    charged = redis_client.get(throttle_key)
    if revoke == "delete_token":
        Token.objects.filter(user=buyer.user).delete()
    else:
        buyer.user.is_active = False
        buyer.user.save()
    response = order(buyer, sale)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert redis_client.get(throttle_key) == charged
    assert redis_client.hlen(f"seckill:{{sale:{sale.pk}}}:queued") == 1


def test_throttled_through_the_gate_sells_nothing(make_client, settings, redis_client):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "order": "2/min",
            "order_ip": "1000/min",
        },
    }
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=5)
    buyer = make_client()
    assert [order(buyer, sale).status_code for _ in range(2)] == [202, 202]
    refused = order(buyer, sale)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert int(refused["Retry-After"]) >= 1
    assert redis_client.hlen(f"seckill:{{sale:{sale.pk}}}:queued") == 2  # nothing reserved


def test_redis_down_is_503_fast_and_sells_nothing(make_client, app_redis):
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=5)
    buyer = make_client()
    assert order(buyer, sale).status_code == 202
    app_redis.stop()
    started = time.monotonic()
    answers = [order(buyer, sale) for _ in range(3)]
    assert time.monotonic() - started < 10  # generous: no request waits out retries
    for response in answers:
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert response["Retry-After"]
    assert not Order.objects.filter(sale=sale).exists()


def test_sold_out_answers_are_not_logged_as_warnings_other_refusals_are(make_client, caplog):
    sale = make_sale(stock=0)
    buyer = make_client()
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert order(buyer, sale).status_code == 409
        assert not caplog.records
        assert order(buyer, sale, 0).status_code == 400
    assert [record.status_code for record in caplog.records] == [400]
