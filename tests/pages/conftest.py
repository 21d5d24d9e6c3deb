"""Fixtures for the browser-page tests (Django test client here; tests/browser reuses some)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

PASSWORD = "pw-1234-long-enough"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Sign-ups and logins are not what these tests measure: skip PBKDF2's deliberate cost."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_redis(redis_client):
    """Sale ids are reused between tests: no Redis mirror may outlive its test."""


@pytest.fixture
def make_user(db):
    def build(username: str = "buyer", *, staff: bool = False):
        return get_user_model().objects.create_user(username, password=PASSWORD, is_staff=staff)

    return build


@pytest.fixture
def users(make_user):
    """``users(n)``: n new buyers."""
    return lambda n: [make_user(f"user{i}") for i in range(n)]


@pytest.fixture
def login(make_user):
    """A test client signed in as a new user."""

    def build(username: str = "buyer", *, staff: bool = False) -> Client:
        client = Client()
        client.user = make_user(username, staff=staff)
        client.force_login(client.user)
        return client

    return build


def hidden_value(html: str, name: str) -> str:
    """The value of a hidden input in a rendered page."""
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden input {name}"
    return found.group(1)
