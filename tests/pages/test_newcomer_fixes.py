"""What a newcomer tripped over on the pages: the sign-up page's log-in link, the words after
an over-limit purchase, the quantity box's maximum, prices without a currency, mixed badge
casing and the dashboard's audit report printed as a Python repr."""

from __future__ import annotations

import html as html_lib
import json
import re

import pytest
from django.test import Client

from seckill.placement import place_order
from tests.engine.factories import make_sale
from tests.pages.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def quantity_max(html: str) -> int:
    return int(re.search(r'<input type="number" name="quantity"[^>]*max="(\d+)"', html, re.S)[1])


def test_signup_pages_log_in_link_lands_on_the_home_page(make_user):
    html = Client().get("/accounts/signup/").content.decode()
    link = re.search(r'Already have one\? <a href="([^"]+)">Log in</a>', html)[1]
    assert link == "/accounts/login/?next=/"
    make_user("newcomer")
    response = Client().post(link, {"username": "newcomer", "password": PASSWORD, "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_over_the_limit_says_what_is_held_and_what_is_left(login):
    client = login()
    sale = make_sale(stock=5, per_user_limit=2)
    place_order(sale.pk, client.user, 1)
    response = client.post(f"/sales/{sale.pk}/buy/", {"quantity": 2, "idempotency_key": "web-2"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "You hold 1 of the 2 allowed per buyer: up to 1 more." in html
    assert "already hold as many" not in html


def test_quantity_box_allows_only_what_may_still_be_bought(login):
    client = login()
    roomy = make_sale(stock=10, per_user_limit=3)
    assert quantity_max(client.get(f"/sales/{roomy.pk}/").content.decode()) == 3
    place_order(roomy.pk, client.user, 1)
    html = client.get(f"/sales/{roomy.pk}/").content.decode()
    assert quantity_max(html) == 2 and "up to 2 more" in html
    nearly_gone = make_sale(stock=1, per_user_limit=3)
    assert quantity_max(client.get(f"/sales/{nearly_gone.pk}/").content.decode()) == 1


def test_prices_carry_the_currency(login, settings):
    settings.SHOP_CURRENCY_SYMBOL = "€"
    client = login()
    sale = make_sale(price="1234.50")
    assert "€1,234.50" in client.get(f"/sales/{sale.pk}/").content.decode()
    assert "€1,234.50" in client.get("/").content.decode()
    order = place_order(sale.pk, client.user, 1).order
    assert "Pay €1,234.50" in client.get(f"/orders/{order.pk}/").content.decode()


def test_badges_use_sentence_case(login):
    client = login()
    sale = make_sale()
    place_order(sale.pk, client.user, 1)
    html = client.get("/orders/").content.decode()
    badges = re.findall(r'<span class="badge badge--[a-z_]+">([^<]+)</span>', html)
    assert badges == ["Pending payment"]
    assert "Live now" in client.get(f"/sales/{sale.pk}/").content.decode()


def test_dashboard_audit_report_is_json(login, redis_client):
    sale = make_sale()
    place_order(sale.pk, login("buyer").user, 1)
    html = login("boss", staff=True).get("/staff/").content.decode()
    reports = re.findall(r"<pre>(.*?)</pre>", html, re.S)
    assert reports
    for text in reports:
        json.loads(html_lib.unescape(text))  # not a Python repr
    assert "SaleStatus." not in html
