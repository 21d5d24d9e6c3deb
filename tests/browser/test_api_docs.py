"""/api/docs/ (Swagger UI) and /api/redoc/ come from the app's own static files: with every
request to anything but the live server refused, both still show the API's operations."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.django_db(transaction=True)
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def offline_page(new_context, live_server):
    """A page whose requests to anything but the live server (loopback) are aborted, and listed."""
    context = new_context()
    own = urlsplit(live_server.url)
    assert own.hostname in ("127.0.0.1", "localhost")
    blocked: list[str] = []

    def only_loopback(route):
        url = route.request.url
        if urlsplit(url).netloc == own.netloc or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.blocked = blocked
    return page


def test_swagger_ui_works_offline(offline_page):
    offline_page.goto("/api/docs/")
    operation = offline_page.locator(".opblock-summary-path", has_text="/api/v1/sales/{id}/orders/")
    operation.first.wait_for()
    assert offline_page.locator(".opblock").count() >= 10
    assert offline_page.blocked == []


def test_redoc_works_offline(offline_page):
    offline_page.goto("/api/redoc/")
    offline_page.get_by_text("/api/v1/sales/{id}/orders/").first.wait_for(state="attached")
    # The bundle's own "API docs by Redocly" footer image is the one thing it asks a CDN for;
    # it hides itself when that fails.
    assert [u for u in offline_page.blocked if u != REDOCLY_LOGO] == []
