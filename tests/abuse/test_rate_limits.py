"""Rate limits: a client over its budget gets 429 ``throttled`` with Retry-After and changes
nothing; the limits are per buyer, per address and per username, live in Redis (one small key
with a TTL per client, shared by every web process), and survive a Redis outage without 500s.
An order's two limits (buyer, address) are decided together in one Redis round trip, all or
nothing."""

from __future__ import annotations

import threading

import pytest
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from seckill import rate_limit
from seckill.models import Order, Sale
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-1234-long"


@pytest.fixture
def rates(settings):
    """Set the throttle rates for one test (unlisted scopes stay generous)."""

    def set_rates(**scoped: str) -> None:
        scopes = ("order", "order_ip", "auth", "purchase_token", "purchase_token_ip")
        base = dict.fromkeys(scopes, "1000/min")
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**base, **scoped},
        }

    return set_rates


@pytest.fixture
def throttle_round_trips(redis_round_trips) -> list[bytes]:
    """The round trips to Redis that name a throttle key (tests/conftest.py)."""
    return redis_round_trips(b"throttle:")


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


def test_password_guessing_is_slowed_per_address_and_per_username(django_user_model, rates):
    """Fault: password guessing, from one address and then spread over many addresses against
    one account. Both are cut off after the ``auth`` budget, even for the right password."""
    rates(auth="3/min")
    django_user_model.objects.create_user("victim", password=PASSWORD)
    client = APIClient()

    def guess(password: str, addr: str, username: str = "victim"):
        return client.post(
            "/api/v1/auth/token/",
            {"username": username, "password": password},
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
        ok, _ = rate_limit.hit("throttle:test:crowd", 10, 60)
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
    assert rate_limit.hit("throttle:test:wait", 2, 10)[0]
    assert rate_limit.hit("throttle:test:wait", 2, 10)[0]
    ok, wait = rate_limit.hit("throttle:test:wait", 2, 10)
    assert not ok and 4.0 < wait <= 5.0


def test_gcra_step_refills_one_slot_per_interval():
    tat = 0.0
    for _ in range(3):
        ok, tat, _ = rate_limit.gcra_step(tat, 100.0, 1.0, 3.0)
        assert ok
    ok, _, wait = rate_limit.gcra_step(tat, 100.0, 1.0, 3.0)
    assert not ok and wait == pytest.approx(1.0)
    assert rate_limit.gcra_step(tat, 101.0, 1.0, 3.0)[0]


def test_gcra_step_allows_a_fresh_clients_first_request_whatever_the_clock_reads():
    """One request an hour: the first one is allowed at any clock reading. These readings made
    ``(now + 3600) - 3600`` come out a hair above ``now`` in floats, which refused it."""
    for now in (0.3, 1565.203816, 2441.437518, 4028.40832):
        assert (now + 3600.0) - 3600.0 > now  # the rounding this test is about
        allowed, tat, wait = rate_limit.gcra_step(0.0, now, 3600.0, 3600.0)
        assert allowed and wait == 0.0 and tat == now + 3600.0
        assert not rate_limit.gcra_step(tat, now, 3600.0, 3600.0)[0]


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
            "/api/v1/auth/token/",
            {"username": "buyer", "password": PASSWORD},
            REMOTE_ADDR="10.2.0.1",
        ).status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    assert Order.objects.count() == 0 and Sale.objects.get(pk=sale.pk).stock_left == 5


def test_browser_login_helper_shares_the_auth_budget(django_user_model, rates):
    """``rate_limit.sign_in_wait`` (what the browser login view calls) counts against the same
    per-address and per-username budgets as the API's token endpoint."""
    rates(auth="2/min")
    client = APIClient()
    body = {"username": "someone", "password": "wrong"}
    assert client.post("/api/v1/auth/token/", body, REMOTE_ADDR="10.3.0.1").status_code == 401
    page = RequestFactory()
    here, there = page.post("/", REMOTE_ADDR="10.3.0.9"), page.post("/", REMOTE_ADDR="10.3.0.8")
    address = rate_limit.client_address
    assert rate_limit.sign_in_wait(address=address(here), username="someone") == 0.0
    spent = rate_limit.sign_in_wait(address=address(there), username="SOMEONE")
    assert spent > 0  # the username's budget is spent, whatever the address
    assert_throttled(client.post("/api/v1/auth/token/", body, REMOTE_ADDR="10.3.0.7"))


def test_an_order_request_checks_both_limits_in_one_round_trip(
    make_client, rates, throttle_round_trips
):
    """The order path's throttle step is one Redis round trip carrying the buyer's and the
    address's keys, allowed or refused, on both throttled endpoints (the purchase pass with
    its own two keys). The first order's token is not cached yet: the admission gate's script
    finds no entry and charges nothing, and DRF's path authenticates from the database and
    throttles in one round trip. The second order goes through the gate, whose script derives
    the buyer's key from the token's cache entry (in the same packet) and the key prefix."""
    rates(order="1/min", order_ip="5/min")
    sale = make_sale(stock=10, per_user_limit=10)
    buyer = make_client("one")
    assert order(buyer, sale).status_code == 201
    assert_throttled(order(buyer, sale))
    buyer.post(f"/api/v1/sales/{sale.pk}/purchase-token/", REMOTE_ADDR="10.0.0.1")
    missed, charged, gated, token_pass = throttle_round_trips
    assert b"auth:token:" in missed
    assert f"throttle:order:u{buyer.user.pk}".encode() in charged
    assert b"throttle:order:u" in gated and b"auth:token:" in gated
    for packet in (charged, gated):
        assert b"throttle:order_ip:10.0.0.1" in packet
    assert f"throttle:purchase_token:u{buyer.user.pk}".encode() in token_pass
    assert b"throttle:purchase_token_ip:10.0.0.1" in token_pass
    assert b"throttle:order" not in token_pass


def test_a_token_gated_purchase_spends_one_order_of_the_budget(make_client, rates):
    """Asking for the purchase pass has its own limits: with one order an hour allowed, a
    buyer can still fetch a pass and buy with it (the pass used to spend that one order)."""
    rates(order="1/hour", purchase_token="1/hour")
    sale = make_sale(stock=10, per_user_limit=10)
    sale.require_purchase_token = True
    sale.save()
    buyer = make_client("gated")
    issued = buyer.post(f"/api/v1/sales/{sale.pk}/purchase-token/", REMOTE_ADDR="10.0.0.1")
    assert issued.status_code == 201
    placed = buyer.post(
        f"/api/v1/sales/{sale.pk}/orders/",
        {"quantity": 1},
        format="json",
        REMOTE_ADDR="10.0.0.1",
        HTTP_PURCHASE_TOKEN=issued.json()["token"],
    )
    assert placed.status_code == 201, placed.content
    assert_throttled(buyer.post(f"/api/v1/sales/{sale.pk}/purchase-token/"))  # its own 1/hour


@pytest.mark.parametrize("refusing, allowing", [("order", "order_ip"), ("order_ip", "order")])
def test_one_limit_refusing_charges_neither_key(
    make_client, rates, redis_client, refusing, allowing
):
    """Fault: one of an order's two limits is spent, the other has room. The request is refused
    with the spent limit's wait, and neither key moves: refused requests do not eat the other
    limit's budget (so a throttled bot does not lock out its address's other buyers)."""
    rates(**{refusing: "2/min", allowing: "10/min"})
    sale = make_sale(stock=10, per_user_limit=10)
    buyer = make_client("bot")
    keys = [f"throttle:order:u{buyer.user.pk}", "throttle:order_ip:10.0.0.1"]
    assert [order(buyer, sale).status_code for _ in range(2)] == [201, 201]
    before = redis_client.mget(keys)
    for _ in range(3):
        refused = order(buyer, sale)
        assert_throttled(refused)
        assert 28 <= int(refused["Retry-After"]) <= 30  # 2/min: the next slot is 30 s away
    assert redis_client.mget(keys) == before
    assert Order.objects.count() == 2
    # The limit with room still allows: another buyer there, or this buyer elsewhere.
    if refusing == "order":
        assert order(make_client("neighbour"), sale).status_code == 201
    else:
        assert order(buyer, sale, addr="10.0.0.2").status_code == 201


@pytest.mark.parametrize("order_rate, ip_rate", [("1/min", "1/hour"), ("1/hour", "1/min")])
def test_retry_after_is_the_longest_wait(make_client, rates, order_rate, ip_rate):
    """Both limits refuse: Retry-After is the later of the two next slots (an hour, not a
    minute), whichever limit it belongs to — retrying after the shorter wait would be refused."""
    rates(order=order_rate, order_ip=ip_rate)
    sale = make_sale(stock=10, per_user_limit=10)
    buyer = make_client("one")
    assert order(buyer, sale).status_code == 201
    refused = order(buyer, sale)
    assert_throttled(refused)
    assert 3590 <= int(refused["Retry-After"]) <= 3600


def test_a_scope_without_a_rate_is_not_limited(make_client, rates, redis_client):
    """A scope whose rate is None is skipped: no key and no refusal from it."""
    rates(order="2/min", order_ip=None)
    sale = make_sale(stock=10, per_user_limit=10)
    buyer = make_client("one")
    assert [order(buyer, sale).status_code for _ in range(2)] == [201, 201]
    assert_throttled(order(buyer, sale))
    assert [k.decode() for k in redis_client.scan_iter("throttle:*")] == [
        f"throttle:order:u{buyer.user.pk}"
    ]


def test_no_rates_no_round_trip(make_client, rates, throttle_round_trips):
    """With every order scope unlimited, the throttle step does not call Redis at all."""
    rates(order=None, order_ip=None)
    sale = make_sale(stock=10, per_user_limit=10)
    assert order(make_client("one"), sale).status_code == 201
    assert throttle_round_trips == []


@pytest.fixture(params=["redis", "in-process"])
def limiter(request, redis_client, monkeypatch) -> str:
    """Run a test against the Redis script and against the in-process fallback."""
    if request.param == "in-process":
        monkeypatch.setattr(rate_limit._backoff, "until", float("inf"))
    return request.param


def test_hit_all_is_all_or_nothing(limiter, redis_client):
    """Both implementations: allowed only when every limit allows; a refusal charges no key
    and reports the longest refusing wait."""
    a, b, c = "throttle:test:a", "throttle:test:b", "throttle:test:c"
    assert rate_limit.hit_all([(a, 1, 60), (b, 3, 60)]) == (True, 0.0)
    ok, wait = rate_limit.hit_all([(a, 1, 60), (b, 3, 60)])  # a refuses, b would allow
    assert not ok and 59.0 < wait <= 60.0
    assert rate_limit.hit(b, 3, 60)[0] and rate_limit.hit(b, 3, 60)[0]  # b: two of three left
    assert rate_limit.hit(c, 2, 10)[0] and rate_limit.hit(c, 2, 10)[0]
    ok, wait = rate_limit.hit_all([(c, 2, 10), (a, 1, 60), (b, 3, 60)])  # all three refuse
    assert not ok and 59.0 < wait <= 60.0  # a's wait, the longest (c's is ~5 s, b's ~60 s)
    ok, wait = rate_limit.hit_all([(c, 2, 10)])
    assert not ok and 4.0 < wait <= 5.0
    assert rate_limit.hit_all([]) == (True, 0.0)
    stored = redis_client.keys("throttle:test:*")
    assert len(stored) == (3 if limiter == "redis" else 0)


def test_redis_down_keeps_both_order_limits_in_process(make_client, rates, app_redis):
    """Fault: Redis stops during a sale. The in-process fallback still applies the buyer's and
    the address's limits together, all or nothing: the buyer's refused third request is not
    charged to the address (placement itself answers 503, it needs Redis)."""
    rates(order="2/min", order_ip="3/min")
    sale = make_sale(stock=5)
    first, second = make_client("first"), make_client("second")
    app_redis.stop()
    codes = [order(first, sale).status_code for _ in range(3)]
    assert codes == [503, 503, 429]  # the buyer's limit
    assert order(second, sale).status_code == 503  # the address's third, still free
    assert_throttled(order(second, sale))  # the address's limit
    assert order(second, sale, addr="10.0.0.2").status_code == 503
    assert Order.objects.count() == 0


@pytest.mark.parametrize("spelling", ["bob ", " bob", "bob\t", "\u00a0bob", "ｂｏｂ", "BOB"])
def test_a_throttled_username_cannot_be_respelled(django_user_model, rates, spelling):
    """issue 15: the budget keyed the raw username while sign-in trims it (API) or
    NFKC-normalises it (browser); each respelling of a throttled name had a fresh budget."""
    rates(auth="2/min")
    django_user_model.objects.create_user("bob", password=PASSWORD)
    client = APIClient()
    for i in range(2):
        wrong = {"username": "bob", "password": f"wrong{i}"}
        assert (
            client.post("/api/v1/auth/token/", wrong, REMOTE_ADDR=f"10.5.0.{i}").status_code == 401
        )
    right = {"username": spelling, "password": PASSWORD}
    assert_throttled(client.post("/api/v1/auth/token/", right, REMOTE_ADDR="10.5.1.1"))
    browser = Client()
    page = browser.post("/accounts/login/", right, REMOTE_ADDR="10.5.1.2")
    assert page.status_code == 429 and "_auth_user_id" not in browser.session


def test_admin_login_is_throttled_like_sign_in(django_user_model, rates):
    """issue 15: 60 wrong passwords for ``staff`` on /admin/login/, then the right one logged in."""
    rates(auth="3/min")
    django_user_model.objects.create_user("staff", password=PASSWORD, is_staff=True)
    browser = Client()
    for i in range(3):
        wrong = {"username": "staff", "password": f"wrong{i}", "next": "/admin/"}
        assert browser.post("/admin/login/", wrong, REMOTE_ADDR="10.6.0.1").status_code == 200
    right = {"username": "staff", "password": PASSWORD, "next": "/admin/"}
    refused = browser.post("/admin/login/", right, REMOTE_ADDR="10.6.0.2")  # the name's budget
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "Too many attempts" in refused.content.decode()
    assert "_auth_user_id" not in browser.session
    # ... and the API's token endpoint spends the same budget
    api = APIClient().post("/api/v1/auth/token/", right, REMOTE_ADDR="10.6.0.3")
    assert_throttled(api)


def test_sign_in_is_one_round_trip_and_a_refusal_charges_neither_key(
    django_user_model, rates, throttle_round_trips, redis_client
):
    """issue 13: two round trips, and the address charged even when the username's budget
    refused: now one all-or-nothing call."""
    rates(auth="1/min")
    client = APIClient()
    body = {"username": "someone", "password": "wrong"}
    assert client.post("/api/v1/auth/token/", body, REMOTE_ADDR="10.7.0.1").status_code == 401
    assert len(throttle_round_trips) == 1
    throttle_round_trips.clear()
    # The username's budget refuses from a fresh address: that address must stay uncharged.
    assert_throttled(client.post("/api/v1/auth/token/", body, REMOTE_ADDR="10.7.0.2"))
    assert len(throttle_round_trips) == 1
    other = {"username": "another", "password": "wrong"}
    assert client.post("/api/v1/auth/token/", other, REMOTE_ADDR="10.7.0.2").status_code == 401


def test_invalid_tokens_count_against_the_address(rates, django_assert_max_num_queries):
    """issue 15: invalid API tokens were never limited (each a database query); now they
    spend the address's sign-in budget, and a spent address is refused before the query (by
    the process that saw it refused)."""
    rates(auth="3/min")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    codes = [client.get("/api/v1/orders/", REMOTE_ADDR="10.8.0.1").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    with django_assert_max_num_queries(0):
        assert_throttled(client.get("/api/v1/orders/", REMOTE_ADDR="10.8.0.1"))
    assert client.get("/api/v1/orders/", REMOTE_ADDR="10.8.0.2").status_code == 401
