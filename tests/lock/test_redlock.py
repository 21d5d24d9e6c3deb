"""Redlock over three independent masters (the ``redis_trio`` fixture)."""

from __future__ import annotations

import threading
import time

import pytest

from seckill.lock import LockNotOwnedError, Redlock


def test_locks_on_all_three_and_excludes_others(redis_trio) -> None:
    a = Redlock(redis_trio.clients, "rl", ttl=10)
    b = Redlock(redis_trio.clients, "rl", ttl=10)
    assert a.acquire(blocking=False) and a.owned() and b.locked()
    assert all(c.get(a.key).decode() == a.token for c in redis_trio.clients)
    assert not b.acquire(blocking=False) and not b.acquire(timeout=0.2)
    a.release()
    assert not any(c.exists(a.key) for c in redis_trio.clients)
    assert b.acquire(blocking=False) and b.fence > a.fence
    b.release()


def test_one_master_down_still_locks(redis_trio) -> None:
    redis_trio.stop(2)
    a = Redlock(redis_trio.clients, "rl-one-down", ttl=10)
    assert a.acquire(timeout=5) and a.owned()
    assert not Redlock(redis_trio.clients, "rl-one-down", ttl=10).acquire(blocking=False)
    a.extend()
    a.release()


def test_two_masters_down_refuses(redis_trio) -> None:
    redis_trio.stop(1)
    redis_trio.stop(2)
    lock = Redlock(redis_trio.clients, "rl-two-down", ttl=10)
    assert not lock.acquire(blocking=False)
    assert not lock.acquire(timeout=0.3)
    assert not redis_trio.clients[0].exists(lock.key)  # the minority grab was undone


def test_minority_held_elsewhere_is_not_enough(redis_trio) -> None:
    """Two masters still hold another client's lease: only one of three votes is ours."""
    other = "someone-else"
    for client in redis_trio.clients[:2]:
        client.set("lock:{rl-minority}", other, px=10_000)
    lock = Redlock(redis_trio.clients, "rl-minority", ttl=10)
    assert not lock.acquire(blocking=False)
    assert not redis_trio.clients[2].exists(lock.key)
    assert all(c.get(lock.key) == other.encode() for c in redis_trio.clients[:2])


def test_expired_redlock_release_raises(redis_trio) -> None:
    a = Redlock(redis_trio.clients, "rl-exp", ttl=0.2)
    a.acquire()
    time.sleep(0.6)
    assert not a.owned()
    b = Redlock(redis_trio.clients, "rl-exp", ttl=10)
    assert b.acquire(timeout=5)
    with pytest.raises(LockNotOwnedError):
        a.release()
    assert b.owned()
    b.release()


def test_redlock_mutual_exclusion_threads(redis_trio) -> None:
    counter = redis_trio.clients[0]
    counter.set("rl:counter", 0)

    def work() -> None:
        lock = Redlock(redis_trio.clients, "rl-mx", ttl=10, retry_delay=0.01)
        for _ in range(10):
            with lock:
                value = int(counter.get("rl:counter"))
                time.sleep(0.001)
                counter.set("rl:counter", value + 1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert int(counter.get("rl:counter")) == 40


def test_redlock_watchdog_keeps_lease(redis_trio) -> None:
    a = Redlock(redis_trio.clients, "rl-dog", ttl=1.5, watchdog=True)
    a.acquire()
    time.sleep(4.5)  # 3 x TTL
    assert a.owned() and not a.lease_lost
    a.release()
