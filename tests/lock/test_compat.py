"""RedisPyCompatibleLock: redis-py's interface, and what it does better than redis-py's Lock
(the deliberate differences listed in docs/lock.md)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import redis
import redis.lock

from devtools.redis_server import ROOT
from seckill.lock import Lock, RedisPyCompatibleLock

HOLD_WITHOUT_TIMEOUT = """
import sys, time, redis
from seckill.lock import Lock, RedisPyCompatibleLock

class ShortLease(RedisPyCompatibleLock):
    default_lease = 0.6

lock = redis.Redis.from_url(sys.argv[1]).lock(sys.argv[2], lock_class=ShortLease)
assert lock.acquire()
print(lock.local.token.decode(), flush=True)
time.sleep(60)
"""


def test_lock_without_timeout_frees_when_its_holder_is_killed(redis_client, redis_url) -> None:
    # redis-py's Lock without timeout: a key with no TTL, held forever by a holder that dies.
    theirs = redis.lock.Lock(redis_client, "compat-theirs")
    assert theirs.acquire(blocking=False) and redis_client.ttl("compat-theirs") == -1
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_WITHOUT_TIMEOUT, redis_url, "compat-killed"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        token = child.stdout.readline().strip()
        time.sleep(1.0)  # past its 0.6 s lease: renewed while the holder lives
        assert redis_client.get("compat-killed") == token.encode()
        child.kill()
        child.wait()
        deadline = time.monotonic() + 5
        while redis_client.exists("compat-killed") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not redis_client.exists("compat-killed")  # freed by its lease, not never
    finally:
        child.kill()
        child.wait()
    theirs.release()


def test_waiters_are_handed_the_lock_in_order_without_sleeping(redis_client) -> None:
    holder = redis_client.lock("compat-fifo", timeout=10, lock_class=RedisPyCompatibleLock)
    assert holder.acquire()
    order: list[int] = []

    def wait(i: int) -> None:
        # sleep=5: redis-py's Lock would notice a release up to 5 s late, in no order.
        lock = redis_client.lock(
            "compat-fifo",
            timeout=10,
            sleep=5,
            blocking_timeout=10,
            lock_class=RedisPyCompatibleLock,
        )
        assert lock.acquire()
        order.append(i)
        lock.release()

    threads = []
    for i in range(3):
        threads.append(threading.Thread(target=wait, args=(i,)))
        threads[-1].start()
        while redis_client.llen(holder.keys.queue) < i + 1:  # queued in this order
            time.sleep(0.005)
    released = time.monotonic()
    holder.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2]
    assert time.monotonic() - released < 2.5  # handed over at once, not after a 5 s sleep


def test_release_and_extend_by_token_from_another_lock_object(redis_client, redis_url) -> None:
    first = redis_client.lock("compat-token", timeout=5, lock_class=RedisPyCompatibleLock)
    assert first.acquire(token="order-42") and first.fence is not None
    other = redis.Redis.from_url(redis_url).lock(
        "compat-token", timeout=5, lock_class=RedisPyCompatibleLock
    )
    other.local.token = b"order-42"  # how redis-py's users release from another process
    assert other.owned() and other.extend(30, replace_ttl=True)
    assert 25_000 < redis_client.pttl("compat-token") <= 30_000
    other.release()
    assert not redis_client.exists("compat-token")


def test_arguments_are_coerced_as_redis_py_does(redis_client) -> None:
    lock = redis_client.lock(
        "compat-coerce",
        timeout="5",
        sleep="0.05",
        blocking_timeout="0.2",
        lock_class=RedisPyCompatibleLock,
    )
    assert lock.acquire() and 0 < redis_client.pttl("compat-coerce") <= 5000
    assert not redis_client.lock(
        "compat-coerce", blocking_timeout="0.1", lock_class=RedisPyCompatibleLock
    ).acquire()
    lock.release()
    core = Lock(redis_client, "compat-coerce-core", ttl="2")  # was a TypeError
    assert core.acquire(timeout="0.1") and 0 < redis_client.pttl(core.key) <= 2000
    with pytest.raises(ValueError, match="number of seconds"):
        Lock(redis_client, "compat-coerce-core", ttl="soon")
    core.release()


def test_threads_sharing_one_single_connection_client_never_overlap(redis_url) -> None:
    shared = redis.Redis.from_url(redis_url, single_connection_client=True)
    inside, overlaps, done = [0], [0], [0]
    guard = threading.Lock()

    def work() -> None:
        for _ in range(10):
            with shared.lock("compat-mutex", timeout=5, lock_class=RedisPyCompatibleLock):
                with guard:
                    inside[0] += 1
                    overlaps[0] += inside[0] > 1
                time.sleep(0.002)
                with guard:
                    inside[0] -= 1
                    done[0] += 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert done[0] == 60 and overlaps[0] == 0
    shared.close()
