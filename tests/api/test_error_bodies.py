"""Every error under /api/ is the JSON error body, also where Django (not DRF) answers."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def error_code(response, status: int) -> str:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return body["error"]["code"]


@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/", "/api/v2/sales/", "/api/v1/sales/x/"])
def test_unknown_api_path_is_json_404(path):
    assert error_code(Client().get(path), 404) == "not_found"


def test_wrong_method_is_json_405():
    assert error_code(Client().get("/api/v1/auth/token/"), 405) == "method_not_allowed"


def test_crash_under_api_is_json_500(monkeypatch):
    from seckill.api import views

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.SaleListCreateView, "list", crash)
    response = Client(raise_request_exception=False).get("/api/v1/sales/")
    assert error_code(response, 500) == "server_error"
    assert b"boom" not in response.content


def test_body_over_the_upload_limit_is_json_400(settings):
    body = b'{"username": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + b'"}'
    response = Client().post("/api/v1/auth/token/", body, content_type="application/json")
    assert error_code(response, 400) == "too_large"
