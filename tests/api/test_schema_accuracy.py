"""The OpenAPI schema agrees with what the order endpoint really answers: 201, 202, the 200
replay and each error body validate against the schema's own response for that status."""

from __future__ import annotations

import copy

import jsonschema
import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)
ORDERS = "/api/v1/sales/{id}/orders/"


@pytest.fixture(scope="module")
def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def as_json_schema(node):
    """OpenAPI 3.0's ``nullable`` as JSON Schema, and objects closed to undeclared properties
    (a field the schema does not list is a mismatch too)."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: as_json_schema(value) for key, value in node.items()}
    if "properties" in node:
        node.setdefault("additionalProperties", False)
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def check(openapi: dict, path: str, method: str, response) -> None:
    responses = openapi["paths"][path][method]["responses"]
    declared = responses.get(str(response.status_code))
    assert declared, f"{response.status_code} is not in the schema of {method.upper()} {path}"
    schema = declared["content"]["application/json"]["schema"]
    document = as_json_schema({"components": copy.deepcopy(openapi["components"]), **schema})
    jsonschema.validate(response.json(), document)


def post_order(client, sale, **headers):
    return client.post(
        f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 1}, format="json", **headers
    )


def test_placements_and_replay_match_the_schema(openapi, make_client):
    client = make_client()
    lock_sale = make_sale(stock=5)
    created = post_order(client, lock_sale, HTTP_IDEMPOTENCY_KEY="k-1")
    replay = post_order(client, lock_sale, HTTP_IDEMPOTENCY_KEY="k-1")
    queued = post_order(client, make_sale(stock=5, strategy="redis_atomic"))
    assert (created.status_code, replay.status_code, queued.status_code) == (201, 200, 202)
    assert queued.json()["created_at"] is None  # what the schema must allow
    for response in (created, replay, queued):
        check(openapi, ORDERS, "post", response)


def test_refusals_match_the_schema(openapi, make_client):
    buyer = make_client()
    sale = make_sale(stock=2)
    assert post_order(buyer, sale).status_code == 201
    refusals = [
        ("invalid", 400, buyer.post(f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 0})),
        ("unauthenticated", 401, post_order(APIClient(), sale)),
        (
            "not_found",
            404,
            buyer.post("/api/v1/sales/987654/orders/", {"quantity": 1}, format="json"),
        ),
        ("limit_reached", 409, post_order(buyer, sale)),
        ("not_live", 409, post_order(buyer, make_sale(starts_in=timezone.timedelta(hours=1)))),
    ]
    assert post_order(make_client("second"), sale).status_code == 201  # the last unit
    refusals.append(("sold_out", 409, post_order(make_client("third"), sale)))
    keyed = make_sale(stock=5, per_user_limit=5)
    assert post_order(buyer, keyed, HTTP_IDEMPOTENCY_KEY="k-q").status_code == 201
    mismatch = buyer.post(
        f"/api/v1/sales/{keyed.pk}/orders/",
        {"quantity": 2},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-q",
    )
    refusals.append(("idempotency_mismatch", 422, mismatch))
    for code, status, response in refusals:
        assert (response.json()["error"]["code"], response.status_code) == (code, status)
        check(openapi, ORDERS, "post", response)


def test_idempotency_key_schema_is_the_rule_the_server_applies(openapi, make_client):
    (header,) = [
        p for p in openapi["paths"][ORDERS]["post"]["parameters"] if p["name"] == "Idempotency-Key"
    ]
    schema = header["schema"]
    client = make_client()
    sale = make_sale(stock=20, per_user_limit=20)
    for key in ["a", "k" * schema["maxLength"], "A.b_c:d-9"]:
        jsonschema.validate(key, schema)
        assert post_order(client, sale, HTTP_IDEMPOTENCY_KEY=key).status_code == 201
    for key in ["k" * (schema["maxLength"] + 1), "has space", "ü"]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(key, schema)
        assert post_order(client, sale, HTTP_IDEMPOTENCY_KEY=key).status_code == 400
