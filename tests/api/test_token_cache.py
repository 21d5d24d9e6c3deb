"""API tokens cached in Redis (seckill.token_cache, called by seckill.api.authentication): the
second request skips the database, and revoking a token or changing its user takes effect on the
very next request."""

import json
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import update_last_login
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from seckill import token_cache
from seckill.api.authentication import CachedTokenAuthentication
from seckill.infrastructure.redis_client import get_redis
from seckill.token_cache import cache_key

ORDERS = "/api/v1/orders/"


@pytest.fixture(autouse=True)
def _redis_fallback_reset():
    """An earlier test that stopped Redis may have left this process skipping the cache."""
    token_cache.reset_fallback()
    yield
    token_cache.reset_fallback()


def token_key(client: APIClient) -> str:
    return client._credentials["HTTP_AUTHORIZATION"].split()[1]


def token_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "authtoken_token" in q["sql"]]


def test_second_request_authenticates_without_the_database(make_client):
    client = make_client()
    with CaptureQueriesContext(connection) as first:
        assert client.get(ORDERS).status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert client.get(ORDERS).status_code == 200
    assert len(token_queries(first)) == 1 and token_queries(second) == []
    assert len(second) == len(first) - 1  # the view's own queries are unchanged
    key = token_key(client)
    stored = get_redis().get(cache_key(key))
    assert json.loads(stored) == {
        "id": client.user.pk,
        "username": "buyer",
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
    }
    assert not [k for k in get_redis().scan_iter("auth:token:*") if key.encode() in k]


def test_cached_user_is_the_user_and_loads_other_fields_lazily(make_client):
    client = make_client()
    get_user_model().objects.filter(pk=client.user.pk).update(email="buyer@example.com")
    auth = CachedTokenAuthentication()
    auth.authenticate_credentials(token_key(client))  # miss: stored
    with CaptureQueriesContext(connection) as hit:
        user, token = auth.authenticate_credentials(token_key(client))
    assert len(hit) == 0
    assert user == client.user and user.username == "buyer" and user.is_authenticated
    assert token.key == token_key(client) and token.user is user
    with CaptureQueriesContext(connection) as lazy:
        assert user.email == "buyer@example.com"
    assert len(lazy) == 1


def test_deleted_token_is_refused_at_once(make_client):
    client = make_client()
    assert client.get(ORDERS).status_code == 200  # cached now
    Token.objects.filter(key=token_key(client)).delete()
    response = client.get(ORDERS)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_deactivated_user_is_refused_at_once(make_client):
    client = make_client()
    assert client.get(ORDERS).status_code == 200
    client.user.is_active = False
    client.user.save()
    response = client.get(ORDERS)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "unauthenticated",
        "message": "User inactive or deleted.",
    }


def test_deleted_user_is_refused_at_once(make_client):
    client = make_client()
    assert client.get(ORDERS).status_code == 200
    client.user.delete()
    assert client.get(ORDERS).status_code == 401


def test_staff_change_is_seen_by_the_next_request(make_client):
    client = make_client()
    # Staff-only create: a buyer is refused before validation, staff get as far as validation.
    assert client.post("/api/v1/sales/", {}, format="json").status_code == 403
    assert client.post("/api/v1/sales/", {}, format="json").status_code == 403  # from the cache
    client.user.is_staff = True
    client.user.save()
    assert client.post("/api/v1/sales/", {}, format="json").status_code == 400
    get_user_model().objects.filter(pk=client.user.pk).update(is_staff=False)
    client.user.refresh_from_db()
    client.user.save()  # a save through the model, whatever changed, revokes
    assert client.post("/api/v1/sales/", {}, format="json").status_code == 403


def test_a_lookup_racing_a_revocation_cannot_cache_the_old_answer(make_client):
    """The change tombstones the key: a request that read the old rows just before (or before
    the transaction committed) fails to store them, and lookups go to the database."""
    client = make_client()
    user, token = CachedTokenAuthentication().authenticate_credentials(token_key(client))
    token_cache.forget_tokens([token.key])
    CachedTokenAuthentication().authenticate_credentials(token_key(client))  # tries to store
    assert get_redis().get(cache_key(token.key)) == token_cache.TOMBSTONE
    assert 0 < get_redis().ttl(cache_key(token.key)) <= token_cache.TOMBSTONE_TTL


def test_revocation_is_written_again_when_the_transaction_commits(
    make_client, django_capture_on_commit_callbacks
):
    client = make_client()
    rkey = cache_key(token_key(client))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.user.is_active = False
        client.user.save()
        assert get_redis().get(rkey) == token_cache.TOMBSTONE
        # An entry slipped in before the commit (say, after a long transaction outlived the
        # first tombstone) is overwritten by the commit.
        get_redis().set(rkey, json.dumps({"stale": True}))
    assert len(callbacks) == 1
    assert get_redis().get(rkey) == token_cache.TOMBSTONE


def test_login_timestamp_does_not_revoke(make_client):
    client = make_client()
    assert client.get(ORDERS).status_code == 200
    update_last_login(None, client.user)  # what every browser login does
    with CaptureQueriesContext(connection) as queries:
        assert client.get(ORDERS).status_code == 200
    assert token_queries(queries) == []


@pytest.mark.parametrize(
    "header",
    ["Token not-a-real-token", "Token ", "Token a b", "token " + "0" * 40],
)
def test_bad_tokens_get_the_api_error_and_challenge(db, header):
    response = APIClient().get(ORDERS, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response.json()["error"]["message"].startswith(("Invalid token", "Invalid token header"))


@pytest.mark.django_db(transaction=True)
def test_redis_down_authenticates_from_the_database(make_client, app_redis):
    client = make_client()
    assert client.get(ORDERS).status_code == 200  # cached on the app's Redis
    app_redis.stop()
    response = client.get(ORDERS)
    assert response.status_code == 200
    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):  # Redis is skipped for a while: no connection attempt per request
            assert client.get(ORDERS).status_code == 200
    assert len(token_queries(queries)) == 5
    assert time.monotonic() - started < 2
    # Revocation while Redis is down still revokes: the database is the record.
    client.user.is_active = False
    client.user.save()
    assert client.get(ORDERS).status_code == 401
    bad = APIClient().get(ORDERS, HTTP_AUTHORIZATION="Token nope")
    assert bad.status_code == 401


def test_schema_still_declares_the_token_scheme(db):
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schemes = schema.json()["components"]["securitySchemes"]
    assert schemes["tokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }
    assert {"tokenAuth": []} in schema.json()["paths"]["/api/v1/orders/"]["get"]["security"]


@pytest.mark.django_db
def test_signing_in_warms_the_cache(redis_client):
    """A crowd signs in before the sale, then buys once each: the first order is a hit."""
    credentials = {"username": "early", "password": "pw-1234-long"}
    anonymous = APIClient()
    token = anonymous.post("/api/v1/auth/register/", credentials, format="json").json()["token"]
    buyer = APIClient()
    buyer.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    with CaptureQueriesContext(connection) as after_registering:
        assert buyer.get(ORDERS).status_code == 200
    get_redis().delete(cache_key(token))  # expired, say; signing in again stores it again
    assert anonymous.post("/api/v1/auth/token/", credentials, format="json").json() == {
        "token": token
    }
    with CaptureQueriesContext(connection) as after_signing_in:
        assert buyer.get(ORDERS).status_code == 200
    assert token_queries(after_registering) == [] and token_queries(after_signing_in) == []
