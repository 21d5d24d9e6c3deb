"""Each API test starts with fresh throttles (tests/api/conftest.py::_fresh_throttles): the two
runs below go in this order and spend the same in-process budget; the second fails if the
first one's state leaks into it."""

import pytest

from seckill import rate_limit


@pytest.mark.parametrize("run", ["first", "second"])
def test_the_in_process_budget_is_fresh_in_each_test(run, monkeypatch):
    monkeypatch.setattr(rate_limit._backoff, "until", float("inf"))  # as after a Redis failure
    assert rate_limit.hit("throttle:test:isolation", 1, 3600) == (True, 0.0)
    allowed, wait = rate_limit.hit("throttle:test:isolation", 1, 3600)
    assert not allowed and wait > 3500
