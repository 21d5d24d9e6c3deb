"""``/loadtest/floor``, the yardstick under any order path that consults Redis once: it parses
``{"quantity": n}``, deducts with exactly one Redis round trip and no database query, and
answers bad input with the API's error body instead of a 500."""

from __future__ import annotations

import pytest

from loadtest.baseline import FLOOR_KEY

pytestmark = pytest.mark.urls("loadtest.urls")


def floor(client, body, content_type: str = "application/json"):
    return client.post("/loadtest/floor", body, content_type=content_type)


@pytest.mark.django_db
def test_one_round_trip_no_query_and_the_units_come_off(
    client, redis_client, redis_round_trips, django_assert_num_queries
):
    first = floor(client, {"quantity": 1})  # loads the script into a fresh Redis
    assert first.status_code == 201, first.content
    sent = redis_round_trips(b"")  # every packet this process sends from here on
    with django_assert_num_queries(0):
        second = floor(client, {"quantity": 3})
    assert second.status_code == 201, second.content
    assert second.json() == {"left": first.json()["left"] - 3}
    assert len(sent) == 1 and sent[0].startswith(b"*") and b"EVALSHA" in sent[0].upper(), sent
    assert int(redis_client.get(FLOOR_KEY)) == second.json()["left"]
    assert 0 < redis_client.ttl(FLOOR_KEY) <= 86_400  # never a key without a TTL


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({"quantity": "two"}, "application/json"),
        ({"quantity": 0}, "application/json"),
        ({}, "application/json"),
        ([1], "application/json"),
        ("{not json", "application/json"),
        ("[" * 50_000, "application/json"),
    ],
)
def test_bad_input_is_a_400_with_the_api_error_body(client, redis_client, body, content_type):
    response = floor(client, body, content_type)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"
    assert not redis_client.exists(FLOOR_KEY)  # nothing was deducted


def test_only_post(client, redis_client):
    response = client.get("/loadtest/floor")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
