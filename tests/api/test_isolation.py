"""Each API test starts with fresh throttles (tests/api/conftest.py::_fresh_throttles): the two
tests below run in this order and spend the same in-process budget; the second fails if the
first one's state leaks into it."""

import pytest

from seckill import rate_limit
from tests.engine.factories import make_sale


@pytest.fixture
def in_process_limits(settings, monkeypatch):
    """One order an hour per address, decided by the in-process fallback (Redis skipped)."""
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "order_ip": "1/hour"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    monkeypatch.setattr(rate_limit._backoff, "until", float("inf"))


def place(client):
    sale = make_sale(stock=5, per_user_limit=5)
    return client.post(f"/api/v1/sales/{sale.pk}/orders/", {"quantity": 1}, format="json")


@pytest.mark.parametrize("run", ["first", "second"])
def test_the_address_budget_is_fresh_in_each_test(run, make_client, in_process_limits):
    client = make_client(f"buyer-{run}")
    first = place(client)
    assert first.status_code == 201, first.content
    assert place(client).status_code == 429
