"""The lab's staff API: bounded parameters, staff only, one run at a time, Stop, and the runs
kept with their figures; documented in the OpenAPI schema."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from seckill.lab import engine
from seckill.lab.models import LabRun
from seckill.lab.params import RunParameters

pytestmark = pytest.mark.django_db
# The runs' crowd works in threads of its own: their tests need committed data.
threaded = pytest.mark.django_db(transaction=True)

RUNS = "/api/v1/lab/runs/"


def client_for(username: str | None, *, staff: bool = False) -> APIClient:
    client = APIClient()
    if username is not None:
        user = get_user_model().objects.create_user(
            username, is_staff=staff
        )  # no password: no hashing
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def staff(redis_client) -> APIClient:
    return client_for("boss", staff=True)


def wait_until_ended(client: APIClient, run_id: int, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"{RUNS}{run_id}/").json()
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def test_only_staff_may_use_the_lab(redis_client):
    anonymous = client_for(None).get(RUNS)
    assert anonymous.status_code in (401, 403)
    assert anonymous.json()["error"]["code"] in ("unauthenticated", "forbidden")
    buyer = client_for("buyer")
    for response in (buyer.get(RUNS), buyer.post(RUNS, {"strategy": "unsafe"}, format="json")):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    assert not LabRun.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"strategy": "nope"}, "strategy"),
        ({"strategy": "unsafe", "buyers": 501}, "buyers"),
        ({"strategy": "unsafe", "stock": 0}, "stock"),
        ({"strategy": "lock", "delay_ms": "slow"}, "delay_ms"),
        ({"strategy": "lock", "time_limit_s": 61}, "time_limit_s"),
        ({}, "strategy"),
    ],
)
def test_parameters_out_of_bounds_are_refused(staff, body, field):
    response = staff.post(RUNS, body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"]
    assert not LabRun.objects.exists()


def test_a_stall_needs_a_critical_section(staff):
    response = staff.post(RUNS, {"strategy": "redis_atomic", "stall_ms": 300}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not LabRun.objects.exists()


@threaded
def test_run_is_started_watched_and_kept(staff):
    body = {"strategy": "unsafe", "stock": 3, "buyers": 8, "delay_ms": 30, "time_limit_s": 10}
    started = staff.post(RUNS, body, format="json")
    assert started.status_code == 202, started.json()
    assert started.json()["status"] == "running"
    ended = wait_until_ended(staff, started.json()["id"])
    assert ended["status"] == "finished" and ended["audit_ok"] is False
    figures = ended["figures"]
    assert figures["sold"] > 3 and figures["overlapping_sections"] >= 2
    assert "wrote its own figure back" in ended["narrative"]
    listed = staff.get(RUNS).json()
    assert listed[0]["id"] == ended["id"] and listed[0]["headline"]["oversold"] > 0


@threaded
def test_one_run_at_a_time_and_stop(staff):
    slow = {"strategy": "lock", "stock": 100, "buyers": 60, "delay_ms": 200, "time_limit_s": 30}
    first = staff.post(RUNS, slow, format="json").json()
    second = staff.post(RUNS, {"strategy": "unsafe"}, format="json")
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "lab_busy"
    time.sleep(0.5)
    stopped = staff.post(f"{RUNS}{first['id']}/stop/")
    assert stopped.status_code == 202
    ended = wait_until_ended(staff, first["id"], timeout=10)
    assert ended["status"] == "stopped" and ended["headline"]["ended_by"] == "stopped"
    assert ended["figures"]["buyers_answered"] < 60
    assert "You stopped the run." in ended["narrative"]
    assert LabRun.objects.count() == 1


def test_an_orphaned_run_is_closed_by_the_next_look(staff):
    orphan = LabRun.objects.create(strategy="lock", params={"strategy": "lock"})
    assert staff.get(f"{RUNS}{orphan.pk}/").json()["status"] == "abandoned"


def test_unknown_run_is_404(staff):
    response = staff.get(f"{RUNS}999999/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_schema_documents_the_lab(db):
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    paths = schema.json()["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/lab/runs/"])
    assert "post" in paths["/api/v1/lab/runs/{id}/stop/"]
    assert "get" in paths["/api/v1/lab/runs/{id}/"]
    assert engine.THREADS  # the schema's help text names the in-flight bound


def test_the_lab_sale_is_never_listed_in_the_shop(redis_client):
    from django.test import Client

    from tests.engine.factories import make_sale

    shop_sale = make_sale()
    lab_sale = engine.lab_sale(RunParameters(strategy="unsafe"))
    listed = [sale["id"] for sale in APIClient().get("/api/v1/sales/").json()["results"]]
    assert shop_sale.pk in listed and lab_sale.pk not in listed
    home = Client().get("/").content.decode()
    assert f'data-sale-id="{shop_sale.pk}"' in home
    assert f'data-sale-id="{lab_sale.pk}"' not in home


@threaded
def test_lab_answers_match_the_schema(staff):
    from drf_spectacular.generators import SchemaGenerator

    from tests.api.test_schema_accuracy import check

    openapi = SchemaGenerator().get_schema(request=None, public=True)
    body = {"strategy": "lock", "stock": 2, "buyers": 3, "delay_ms": 0, "time_limit_s": 5}
    started = staff.post(RUNS, body, format="json")
    check(openapi, "/api/v1/lab/runs/", "post", started)
    check(openapi, "/api/v1/lab/runs/", "post", staff.post(RUNS, {"strategy": "x"}, format="json"))
    check(openapi, "/api/v1/lab/runs/", "get", client_for(None).get(RUNS))
    wait_until_ended(staff, started.json()["id"])
    check(openapi, "/api/v1/lab/runs/{id}/", "get", staff.get(f"{RUNS}{started.json()['id']}/"))
    check(openapi, "/api/v1/lab/runs/", "get", staff.get(RUNS))
    check(openapi, "/api/v1/lab/runs/{id}/", "get", staff.get(f"{RUNS}424242/"))
