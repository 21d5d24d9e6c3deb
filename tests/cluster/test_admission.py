"""The order endpoint's admission gate on a real three-master cluster. The token entry, the
throttle keys and the sale's keys sit in three slots, so the gate splits by slot: the entry's
GET, then both throttles and the sale's sold-out check in one cluster pipeline (redis_atomic's
reservation in a third hop, once the throttles allowed). Still no database query, and revoked
tokens and throttles hold exactly as on one Redis."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from seckill import rate_limit, token_cache
from seckill.keys import sale_keys
from seckill.models import Order, Sale
from tests.api.test_admission import order
from tests.cluster.test_services import api_client, buyers
from tests.engine.factories import make_sale

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def names(trip: list[tuple]) -> bytes:
    return b" ".join(str(arg).encode() for command in trip for arg in command)


def assert_split_by_slot(trips: list[list[tuple]], sale: Sale, *, reserved: bool = False) -> None:
    """The token entry's GET alone; then both throttles and (lock strategies) the sale's check
    in one pipeline; redis_atomic's reservation last, alone."""
    assert len(trips) == (3 if reserved else 2), "\n".join(map(repr, trips))
    token, throttles_and_check = trips[0], names(trips[1])
    assert len(token) == 1 and token[0][0] == "GET"
    assert token[0][1].startswith(token_cache.KEY_PREFIX)
    assert b"throttle:order:u" in throttles_and_check
    assert b"throttle:order_ip:" in throttles_and_check
    sale_tag = f"{{sale:{sale.pk}}}".encode()
    if reserved:
        assert sale_tag not in throttles_and_check  # nothing reserved before the throttles said
        assert sale_tag in names(trips[2]) and len(trips[2]) == 1
    else:
        assert sale_tag in throttles_and_check


@pytest.mark.parametrize("strategy", ["lock", "lock_fenced", "db_row_lock", "redis_atomic"])
def test_sold_out_on_the_cluster_is_two_round_trips_and_no_query(
    strategy, app_on_cluster, eager_celery, cluster_round_trips, django_assert_num_queries
):
    sale = make_sale(stock=1, strategy=strategy)
    first, late = (api_client(user) for user in buyers(2, "so"))
    assert order(first, sale).status_code in (201, 202)  # the last unit; warms the caches
    for _ in range(2):  # late's token is cached after the first; the gate's scripts after both
        assert order(late, sale).json()["error"]["code"] == "sold_out"
    cluster_round_trips.clear()
    with django_assert_num_queries(0):
        response = order(late, sale, HTTP_IDEMPOTENCY_KEY="late-1")
    assert response.status_code == 409
    assert response.json() == {"error": {"code": "sold_out", "message": "this sale is sold out"}}
    assert_split_by_slot(cluster_round_trips, sale, reserved=strategy == "redis_atomic")


def test_redis_atomic_order_on_the_cluster_is_reserved_in_the_third_round_trip(
    app_on_cluster, cluster_round_trips, django_assert_num_queries
):
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=5)
    (user,) = buyers(1, "ra")
    client = api_client(user)
    for key in "k-0", "k-1":  # the token cache, the mirror and the gate's scripts warmed
        assert order(client, sale, HTTP_IDEMPOTENCY_KEY=key).status_code == 202
    cluster_round_trips.clear()
    with django_assert_num_queries(0):
        response = order(client, sale, HTTP_IDEMPOTENCY_KEY="k-2")
    assert response.status_code == 202 and response.json()["persisted"] is False
    assert_split_by_slot(cluster_round_trips, sale, reserved=True)
    queued = app_on_cluster.hgetall(sale_keys(sale.pk).queued)
    assert response.json()["order_id"].encode() in queued  # handed off for Celery to write
    assert len(queued) == 3 and Sale.objects.get(pk=sale.pk).stock_left == 5


def test_a_sold_out_sale_still_replays_the_last_units_order_on_the_cluster(app_on_cluster):
    sale = make_sale(stock=1, strategy="lock")
    (user,) = buyers(1, "rp")
    client = api_client(user)
    placed = order(client, sale, HTTP_IDEMPOTENCY_KEY="last")
    assert placed.status_code == 201
    replay = order(client, sale, HTTP_IDEMPOTENCY_KEY="last")
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (200, "true")
    assert replay.json()["order_id"] == placed.json()["order_id"]
    assert order(client, sale, HTTP_IDEMPOTENCY_KEY="another").status_code == 409


@pytest.mark.parametrize("revoke", ["delete_token", "deactivate_user"])
def test_a_revoked_token_on_the_cluster_buys_nothing_and_is_not_charged(revoke, app_on_cluster):
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=5)
    (user,) = buyers(1, "rv")
    client = api_client(user)
    assert order(client, sale).status_code == 202  # the token is cached from here on
    throttle_key = rate_limit.scoped_key("order", f"u{user.pk}")
    charged = app_on_cluster.get(throttle_key)
    if revoke == "delete_token":
        Token.objects.filter(user=user).delete()
    else:
        user.is_active = False
        user.save()
    response = order(client, sale)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
    assert app_on_cluster.get(throttle_key) == charged
    assert app_on_cluster.hlen(sale_keys(sale.pk).queued) == 1


def test_throttled_on_the_cluster_sells_nothing_and_refunds_the_other_slot(
    app_on_cluster, settings
):
    """The buyer's slot refuses the third order; the address's slot, charged in the same
    pipeline on another master, gets its charge back, and nothing is reserved."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "order": "2/min",
            "order_ip": "1000/min",
        },
    }
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=5)
    (user,) = buyers(1, "th")
    client = api_client(user)
    assert [order(client, sale).status_code for _ in range(2)] == [202, 202]
    address_key = rate_limit.scoped_key("order_ip", "127.0.0.1")
    buyer_key = rate_limit.scoped_key("order", f"u{user.pk}")
    assert app_on_cluster.keyslot(address_key) != app_on_cluster.keyslot(buyer_key)
    charged = app_on_cluster.get(address_key)
    refused = order(client, sale)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "throttled"
    assert int(refused["Retry-After"]) >= 1
    assert app_on_cluster.get(address_key) == charged  # refunded
    assert app_on_cluster.hlen(sale_keys(sale.pk).queued) == 2  # nothing reserved
    assert not Order.objects.filter(sale=sale).exists()
