"""Rate limits: a client over its budget gets 429 ``throttled`` with Retry-After and changes
nothing; the limits are per buyer, per address and per username, live in Redis (one small key
with a TTL per client, shared by every web process), and survive a Redis outage without 500s."""

from __future__ import annotations

import threading

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from seckill.api import throttles
from seckill.models import Order, Sale
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-1234-long"


@pytest.fixture
def rates(settings):
    """Set the throttle rates for one test (unlisted scopes stay generous)."""

    def set_rates(**scoped: str) -> None:
        base = {"order": "1000/min", "order_ip": "1000/min", "auth": "1000/min"}
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**base, **scoped}
        }

    return set_rates


def order(client, sale, addr: str = "10.0.0.1"):
    return client.post(
        f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 1}, format="json", REMOTE_ADDR=addr
    )


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "throttled"
    assert int(response["Retry-After"]) >= 1


def test_per_buyer_order_limit(make_client, rates):
    """Fault: one buyer hammers the buy button. The 4th request in the window is refused, sells
    nothing, and another buyer on the same address is not affected."""
    rates(order="3/min")
    sale = make_sale(stock=10, per_user_limit=10)
    bot, other = make_client("bot"), make_client("other")
    assert [order(bot, sale).status_code for _ in range(3)] == [201, 201, 201]
    assert_throttled(order(bot, sale))
    assert Order.objects.filter(buyer=bot.user).count() == 3
    assert Sale.objects.get(pk=sale.pk).stock_left == 7
    assert order(other, sale).status_code == 201


def test_per_address_order_limit(make_client, rates):
    """Fault: many accounts behind one address. They share the address's budget; a buyer on
    another address is unaffected."""
    rates(order_ip="3/min")
    sale = make_sale(stock=10)
    accounts = [make_client(f"sock{i}") for i in range(4)]
    assert [order(c, sale).status_code for c in accounts[:3]] == [201, 201, 201]
    assert_throttled(order(accounts[3], sale))
    assert order(accounts[3], sale, addr="10.0.0.2").status_code == 201
    assert Order.objects.count() == 4 and Sale.objects.get(pk=sale.pk).stock_left == 6


def test_password_guessing_is_slowed_per_address_and_per_username(
    django_user_model, rates
):
    """Fault: password guessing, from one address and then spread over many addresses against
    one account. Both are cut off after the ``auth`` budget, even for the right password."""
    rates(auth="3/min")
    django_user_model.objects.create_user("victim", password=PASSWORD)
    client = APIClient()

    def guess(password: str, addr: str, username: str = "victim"):
        return client.post(
            "/api/v1/auth/token/", {"username": username, "password": password},
            REMOTE_ADDR=addr,
        )

    assert [guess(f"wrong{i}", "10.1.0.1").status_code for i in range(3)] == [401] * 3
    assert_throttled(guess(PASSWORD, "10.1.0.1"))
    # Many addresses, one account: the username's budget (shared with the guesses above).
    assert_throttled(guess(PASSWORD, "10.1.0.2"))
    # Another account from a fresh address is unaffected.
    django_user_model.objects.create_user("bystander", password=PASSWORD)
    assert guess(PASSWORD, "10.1.0.3", "bystander").status_code == 200


def test_throttle_state_is_one_redis_key_with_a_ttl(make_client, rates, redis_client):
    """The throttle keeps O(1) state per client (not a list of timestamps), expiring within the
    period, so a flash crowd does not grow it."""
    rates(order="5/s", order_ip="5/s")
    sale = make_sale(stock=10, per_user_limit=10)
    buyer = make_client("one")
    for _ in range(4):
        order(buyer, sale)
    keys = sorted(k.decode() for k in redis_client.scan_iter("throttle:*"))
    assert keys == [f"throttle:order:u{buyer.user.pk}", "throttle:order_ip:10.0.0.1"]
    for key in keys:
        assert redis_client.type(key) == b"string"
        assert 0 < redis_client.pttl(key) <= 1000


def test_concurrent_hits_never_exceed_the_budget(redis_client):
    """Many web threads at once on one key: exactly the budget gets through (the check and the
    update are one Lua script, so no two readers see the same count)."""
    allowed: list[bool] = []
    guard = threading.Lock()
    start = threading.Barrier(40)

    def one() -> None:
        start.wait()
        ok, _ = throttles.hit("throttle:test:crowd", 10, 60)
        with guard:
            allowed.append(ok)

    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 10


def test_wait_is_the_time_until_the_next_allowed_request(redis_client):
    """Retry-After is honest: after a burst of 2 per 10 s, the next slot is ~5 s away."""
    assert throttles.hit("throttle:test:wait", 2, 10)[0]
    assert throttles.hit("throttle:test:wait", 2, 10)[0]
    ok, wait = throttles.hit("throttle:test:wait", 2, 10)
    assert not ok and 4.0 < wait <= 5.0


def test_gcra_step_refills_one_slot_per_interval():
    tat = 0.0
    for _ in range(3):
        ok, tat, _ = throttles.gcra_step(tat, 100.0, 1.0, 3.0)
        assert ok
    ok, _, wait = throttles.gcra_step(tat, 100.0, 1.0, 3.0)
    assert not ok and wait == pytest.approx(1.0)
    assert throttles.gcra_step(tat, 101.0, 1.0, 3.0)[0]


def test_redis_down_fails_open_to_a_per_process_limit(make_client, rates, app_redis):
    """Fault: Redis stops. Throttled endpoints never answer 500: login keeps working and is
    still slowed (by this process's fallback limiter); placement answers 503 ``unavailable``
    (it needs Redis for the stock anyway). Decision: fail open, not closed — an outage of the
    limiter's store must not lock every buyer out — but never unlimited."""
    rates(auth="3/min")
    sale = make_sale(stock=5)
    buyer = make_client("buyer")
    app_redis.stop()
    placed = order(buyer, sale)
    assert placed.status_code == 503 and placed.json()["error"]["code"] == "unavailable"
    client = APIClient()
    codes = [
        client.post(
            "/api/v1/auth/token/", {"username": "buyer", "password": PASSWORD},
            REMOTE_ADDR="10.2.0.1",
        ).status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    assert Order.objects.count() == 0 and Sale.objects.get(pk=sale.pk).stock_left == 5


def test_browser_login_helper_shares_the_auth_budget(django_user_model, rates):
    """``login_attempt`` (for the browser login view) counts against the same per-address and
    per-username budgets as the API's token endpoint."""
    rates(auth="2/min")
    client = APIClient()
    body = {"username": "someone", "password": "wrong"}
    assert client.post("/api/v1/auth/token/", body, REMOTE_ADDR="10.3.0.1").status_code == 401
    page = RequestFactory()
    assert throttles.login_attempt(page.post("/", REMOTE_ADDR="10.3.0.9"), "someone") == 0.0
    spent = throttles.login_attempt(page.post("/", REMOTE_ADDR="10.3.0.8"), "SOMEONE")
    assert spent > 0  # the username's budget is spent, whatever the address
    assert_throttled(client.post("/api/v1/auth/token/", body, REMOTE_ADDR="10.3.0.7"))
