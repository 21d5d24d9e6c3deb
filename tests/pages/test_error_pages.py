"""Django's own 403/404/500 and CSRF refusals are pages of the site, with its navigation."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def assert_site_page(response, status: int, title: str) -> str:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert f'data-status="{status}"' in html and f"<h1>{title}</h1>" in html
    assert 'class="topbar"' in html and 'href="/"' in html  # the site's header and a way back
    return html


def test_missing_sale_is_a_site_404():
    html = assert_site_page(Client().get("/sales/987654/"), 404, "Not found")
    assert "Log in" in html


def test_unknown_page_is_a_site_404():
    assert_site_page(Client().get("/no/such/page/"), 404, "Not found")


def test_buyer_on_staff_dashboard_gets_a_site_403(login):
    html = assert_site_page(login("buyer").get("/staff/"), 403, "Not for you")
    assert "My orders" in html  # still signed in, with the full navigation


def test_crash_is_a_site_500(monkeypatch):
    from shop import views

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.pages, "listed_sales", crash)
    html = assert_site_page(
        Client(raise_request_exception=False).get("/"), 500, "Something went wrong"
    )
    assert "boom" not in html


def test_form_without_csrf_token_is_a_site_403():
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "x", "password": "y"})
    assert_site_page(response, 403, "Form expired")
