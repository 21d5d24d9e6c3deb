"""Property-based test: random acquire/release/extend/expire sequences against a model.

Three holders on one lock name - two reentrant, one not - driven by hypothesis against real
Redis. After every step the model's view (who holds, at what depth) must match Redis, fences
must strictly increase, and no waiter bookkeeping may be left behind.
"""

from __future__ import annotations

import os

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from seckill.lock import Lock, LockError, LockNotOwnedError

HOLDERS = st.integers(min_value=0, max_value=2)
REENTRANT = (True, True, False)


class LockModel(RuleBasedStateMachine):
    client: redis.Redis
    fair: bool = True

    def __init__(self) -> None:
        super().__init__()
        self.client.flushdb()
        self.locks = [
            Lock(self.client, "prop", ttl=30, reentrant=r, fair=self.fair) for r in REENTRANT
        ]
        self.holder: int | None = None  # who holds it in Redis
        self.depth = 0
        self.believes = [False, False, False]  # holder objects that think they hold it
        self.last_fence = 0

    @rule(i=HOLDERS, wait=st.sampled_from([None, 0.02]))
    def acquire(self, i: int, wait: float | None) -> None:
        lock = self.locks[i]
        if self.believes[i]:
            if not REENTRANT[i]:
                with pytest.raises(LockError, match="not reentrant"):
                    lock.acquire(blocking=False)
            elif self.holder == i:
                assert lock.acquire(blocking=False)
                self.depth += 1
            else:
                with pytest.raises(LockNotOwnedError):
                    lock.acquire(blocking=False)
            return
        got = lock.acquire(blocking=wait is not None, timeout=wait)
        assert got == (self.holder is None)
        if got:
            assert lock.fence > self.last_fence
            self.last_fence = lock.fence
            self.holder, self.depth, self.believes[i] = i, 1, True

    @rule(i=HOLDERS)
    def release(self, i: int) -> None:
        lock = self.locks[i]
        if self.believes[i] and self.holder == i:
            lock.release()
            if self.depth > 1 and REENTRANT[i]:
                self.depth -= 1
            else:
                self.holder, self.depth, self.believes[i] = None, 0, False
        else:
            with pytest.raises(LockNotOwnedError):
                lock.release()
            self.believes[i] = False

    @rule(i=HOLDERS, additional=st.sampled_from([None, 5.0]))
    def extend(self, i: int, additional: float | None) -> None:
        if self.believes[i] and self.holder == i:
            assert self.locks[i].extend(additional)
        else:
            with pytest.raises(LockNotOwnedError):
                self.locks[i].extend(additional)

    @rule()
    def lease_expires(self) -> None:
        keys = self.locks[0].keys
        self.client.delete(keys.lock, keys.depth)  # what the TTL running out does
        self.holder, self.depth = None, 0

    @invariant()
    def redis_matches_model(self) -> None:
        keys = self.locks[0].keys
        value = self.client.get(keys.lock)
        if self.holder is None:
            assert value is None
        else:
            assert value.decode() == self.locks[self.holder].token
            extra = int(self.client.get(keys.depth) or 0)
            assert extra + 1 == self.depth
        assert not self.client.exists(keys.queue, keys.waiters)
        assert not self.client.keys(keys.lock + ":wake:*")


@pytest.fixture(params=[True, False], ids=["fair", "unfair"])
def lock_model(request, redis_client):
    LockModel.client = redis_client
    LockModel.fair = request.param
    return LockModel


def test_lock_state_machine(lock_model) -> None:
    examples = 200 if os.environ.get("SECKILL_FULL") == "1" else 30
    run = lock_model.TestCase
    run.settings = settings(
        max_examples=examples,
        stateful_step_count=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    run().runTest()
