"""Playwright driving Debian's Chromium against pytest-django's live server.

The browser is launched once per session with the sync API (it runs its own event loop, so no
asyncio loop may be running here). Screenshots go to ``test-artifacts/`` at the repository root.
Without /usr/bin/chromium (``apt-get install chromium``) every browser test skips, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

# The page tests' fixtures: cheap password hashing and an empty Redis (autouse), users.
from tests.pages.conftest import (  # noqa: F401
    PASSWORD,
    _empty_redis,
    fast_password_hashing,
    make_user,
)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module.

    Playwright's sync API leaves its event loop marked as running on this thread, and Django
    refuses ORM calls from a thread with a running loop. The tests' own ORM calls (making sales,
    counting orders) are plain synchronous code, so the check is lifted while the browser is
    up, and only then: module scope keeps it from leaking into other suites.
    """
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: install Debian's package (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with pytest.MonkeyPatch.context() as patch, sync_api.sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_context(browser, live_server) -> Iterator:
    """``new_context(user=None, phone=False)``: an isolated browser profile, optionally signed
    in as ``user`` (a session cookie made by Django's test client, not a trip through the form).
    """
    contexts = []

    def build(user=None, *, phone: bool = False):
        context = browser.new_context(
            viewport=PHONE if phone else DESKTOP, base_url=live_server.url, locale="en-US"
        )
        context.set_default_timeout(10_000)
        if user is not None:
            client = Client()
            client.force_login(user)
            context.add_cookies(
                [
                    {
                        "name": "sessionid",
                        "value": client.cookies["sessionid"].value,
                        "url": live_server.url,
                    }
                ]
            )
        contexts.append(context)
        return context

    yield build
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
