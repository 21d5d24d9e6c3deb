"""Sign up, log in and log out."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.pages.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_signup_creates_the_buyer_signs_them_in_and_goes_back(client):
    page = client.get("/accounts/signup/?next=/sales/1/").content.decode()
    assert '<label for="id_username">' in page and 'name="csrfmiddlewaretoken"' in page
    response = client.post(
        "/accounts/signup/",
        {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD, "next": "/sales/1/"},
    )
    assert response.status_code == 302 and response["Location"] == "/sales/1/"
    assert get_user_model().objects.filter(username="newbie").exists()
    assert "Log out" in client.get("/").content.decode()


def test_signup_refuses_an_outside_next(client):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "n2",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "next": "https://evil.example/",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"username": "x", "password1": PASSWORD, "password2": "other-pw-999"},
            "The two password fields didn",
        ),
        ({"username": "x", "password1": "123", "password2": "123"}, "This password is too short"),
        (
            {"username": "BUYER", "password1": PASSWORD, "password2": PASSWORD},
            "A user with that username already exists.",
        ),
    ],
)
def test_signup_errors_are_shown(client, make_user, data, message):
    make_user("buyer")
    response = client.post("/accounts/signup/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not get_user_model().objects.filter(username="x").exists()


def test_login_and_logout(client, make_user):
    make_user("buyer")
    assert 'name="csrfmiddlewaretoken"' in client.get("/accounts/login/").content.decode()
    bad = client.post("/accounts/login/", {"username": "buyer", "password": "wrong"})
    assert bad.status_code == 200 and 'role="alert"' in bad.content.decode()
    good = client.post(
        "/accounts/login/", {"username": "buyer", "password": PASSWORD, "next": "/orders/"}
    )
    assert good.status_code == 302 and good["Location"] == "/orders/"
    assert client.get("/orders/").status_code == 200
    assert client.get("/accounts/logout/").status_code == 405  # logging out is a POST
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/orders/").status_code == 302


def test_login_form_needs_csrf(make_user):
    make_user("buyer")
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "buyer", "password": PASSWORD})
    assert response.status_code == 403


def test_browser_login_and_signup_are_rate_limited(client, make_user, settings):
    """Guessing passwords through the login form hits the same budget as the API: the fourth
    attempt in the window is refused with 429 and Retry-After, even with the right password."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "order": "1000/min",
            "order_ip": "1000/min",
            "auth": "3/min",
        },
    }
    make_user("victim")
    for guess in ("a", "b", "c"):
        response = client.post("/accounts/login/", {"username": "victim", "password": guess})
        assert response.status_code == 200  # the form again, "wrong password"
    refused = client.post("/accounts/login/", {"username": "victim", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "Too many attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    farming = client.post(
        "/accounts/signup/", {"username": "bot9", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert farming.status_code == 429
    assert not get_user_model().objects.filter(username="bot9").exists()
