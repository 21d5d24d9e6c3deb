"""The Lock API on one Redis: ownership, errors, fencing, reentrancy, extend, keys, cleanup."""

from __future__ import annotations

import threading
import time

import pytest

from seckill.lock import Lock, LockError, LockNotOwnedError, LockTimeout, has_hash_tag, lock_key


def test_key_rule_keeps_hash_tag_or_wraps() -> None:
    assert lock_key("seckill:{sale:42}:lock") == "seckill:{sale:42}:lock"
    assert lock_key("sale:42") == "lock:{sale:42}"
    assert not has_hash_tag("a{}b") and has_hash_tag("a{b}c")
    lock = Lock(None, "seckill:{sale:42}:lock")
    assert lock.keys.fence == "seckill:{sale:42}:lock:fence"
    assert all("{sale:42}" in key for key in lock.keys.all)


def test_acquire_release_owned_locked(redis_client) -> None:
    a, b = Lock(redis_client, "basic", ttl=5), Lock(redis_client, "basic", ttl=5)
    assert not a.locked() and not a.owned()
    assert a.acquire(blocking=False)
    assert a.locked() and a.owned() and b.locked() and not b.owned()
    assert not b.acquire(blocking=False)
    assert not b.acquire(timeout=0.1)
    assert 0 < redis_client.pttl(a.key) <= 5000
    a.release()
    assert not a.locked() and not a.owned()
    assert b.acquire(blocking=False) and b.fence > a.fence
    b.release()


def test_release_and_extend_of_unheld_lock_raise(redis_client) -> None:
    lock = Lock(redis_client, "unheld", ttl=5)
    with pytest.raises(LockNotOwnedError):
        lock.release()
    with pytest.raises(LockNotOwnedError):
        lock.extend()
    lock.acquire()
    lock.release()
    with pytest.raises(LockNotOwnedError, match="not acquired"):
        lock.release()


def test_lease_taken_over_cannot_be_released_or_extended(redis_client) -> None:
    a = Lock(redis_client, "stolen", ttl=5)
    a.acquire()
    redis_client.set(a.key, "someone-else")  # the lease ran out and another holder took it
    with pytest.raises(LockNotOwnedError):
        a.extend()
    with pytest.raises(LockNotOwnedError, match="not owned at release"):
        a.release()
    assert redis_client.get(a.key) == b"someone-else"  # never deletes another holder's lock


def test_context_manager_and_timeout(redis_client) -> None:
    with Lock(redis_client, "ctx", ttl=5) as held:
        assert held.owned()
        with pytest.raises(LockTimeout), Lock(redis_client, "ctx", ttl=5, blocking_timeout=0.05):
            pass
    assert not held.locked()


def test_extend_resets_or_adds(redis_client) -> None:
    lock = Lock(redis_client, "ext", ttl=2)
    lock.acquire()
    assert lock.extend(10)  # adds to what is left
    assert redis_client.pttl(lock.key) > 10_000
    assert lock.extend()  # back to a full ttl
    assert redis_client.pttl(lock.key) <= 2000
    lock.release()


def test_fence_strictly_increases_across_holders(redis_client) -> None:
    fences = []
    for _ in range(5):
        with Lock(redis_client, "fence", ttl=5) as lock:
            fences.append(lock.fence)
    assert fences == sorted(set(fences)) and len(fences) == 5


def test_not_reentrant_by_default(redis_client) -> None:
    lock = Lock(redis_client, "nr", ttl=5)
    lock.acquire()
    with pytest.raises(LockError, match="not reentrant"):
        lock.acquire()
    lock.release()


def test_reentrant_counts_in_redis(redis_client) -> None:
    lock = Lock(redis_client, "re", ttl=5, reentrant=True)
    other = Lock(redis_client, "re", ttl=5)
    assert lock.acquire() and lock.acquire() and lock.acquire()
    fence = lock.fence
    assert lock.depth == 3 and redis_client.get(lock.keys.depth) == b"2"
    lock.release()
    lock.release()
    assert lock.owned() and not other.acquire(blocking=False)
    assert lock.fence == fence
    lock.release()
    assert not lock.locked() and not redis_client.exists(lock.keys.depth)
    assert other.acquire(blocking=False)
    other.release()


def test_blocked_waiters_are_woken_in_fifo_order(redis_client) -> None:
    holder = Lock(redis_client, "fifo", ttl=10)
    holder.acquire()
    order: list[int] = []

    def wait(i: int) -> None:
        lock = Lock(redis_client, "fifo", ttl=10)
        assert lock.acquire(timeout=30)
        order.append(i)
        lock.release()

    threads = []
    for i in range(4):
        threads.append(threading.Thread(target=wait, args=(i,)))
        threads[-1].start()
        deadline = time.monotonic() + 10
        while redis_client.llen(holder.keys.queue) < i + 1:  # queued, in this order
            assert time.monotonic() < deadline
            time.sleep(0.01)
    holder.release()
    for t in threads:
        t.join(30)
    assert order == [0, 1, 2, 3]


@pytest.mark.parametrize("fair", [True, False])
def test_waiter_wakes_on_release_not_on_poll(redis_client, fair) -> None:
    """A waiter with a long poll interval still gets the lock right after release (fair: it
    is handed the lock; unfair: it is woken to take the free lock)."""
    holder = Lock(redis_client, "wake", ttl=60, fair=fair)
    holder.acquire()
    got = threading.Event()

    def wait() -> None:
        lock = Lock(redis_client, "wake", ttl=60, poll_interval=60, fair=fair)
        if lock.acquire(timeout=60):
            got.set()
            lock.release()

    t = threading.Thread(target=wait)
    t.start()
    while not redis_client.llen(holder.keys.queue):
        time.sleep(0.01)
    holder.release()
    assert got.wait(30)  # far below the 60 s poll: woken by the release
    t.join()
    assert set(redis_client.keys("lock:{wake}*")) == {holder.keys.fence.encode()}


def test_unfair_try_lock_may_barge_fair_one_may_not(redis_client) -> None:
    """With waiters queued and the lock just fallen free, a fair try-lock hands the lock to
    the queue head; an unfair one takes it."""
    for fair, barges in ((True, False), (False, True)):
        redis_client.flushdb()
        holder = Lock(redis_client, "barge", ttl=60)
        holder.acquire()
        waiter = threading.Thread(
            target=lambda: Lock(redis_client, "barge", ttl=5, poll_interval=30).acquire(timeout=3)
        )
        waiter.start()
        while not redis_client.exists(holder.keys.queue):
            time.sleep(0.01)
        # The lease ends without a release (so no wake-up); the waiter's next poll is 30 s away.
        redis_client.delete(holder.key)
        barger = Lock(redis_client, "barge", ttl=5, fair=fair)
        assert barger.acquire(blocking=False) is barges
        waiter.join()


def test_timed_out_waiter_leaves_no_trace(redis_client) -> None:
    holder = Lock(redis_client, "trace", ttl=10)
    holder.acquire()
    assert not Lock(redis_client, "trace", ttl=10).acquire(timeout=0.2)
    holder.release()
    # Only this lock's keys: the shared test database also holds Celery's and idgen's.
    assert set(redis_client.keys("lock:{trace}*")) == {holder.keys.fence.encode()}


def test_every_auxiliary_key_expires(redis_client) -> None:
    holder = Lock(redis_client, "aux", ttl=10, reentrant=True)
    holder.acquire()
    holder.acquire()
    waiter = threading.Thread(target=lambda: Lock(redis_client, "aux", ttl=10).acquire(timeout=3))
    waiter.start()
    while not redis_client.exists(holder.keys.queue):
        time.sleep(0.01)
    for key in redis_client.keys("lock:{aux}*"):
        if key != holder.keys.fence.encode():
            assert redis_client.pttl(key) > 0, key
    waiter.join()


def test_lock_commands_per_contended_acquisition_are_few(redis_url) -> None:
    """No spinning: 4 threads x 25 acquisitions cost a handful of lock commands each."""
    import redis

    from loadtest.bench_lock import CountingConnection

    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    CountingConnection.reset()

    def work() -> None:
        lock = Lock(client, "count", ttl=10)
        for _ in range(25):
            with lock:
                time.sleep(0.002)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    per_acquisition = CountingConnection.total() / 100
    client.delete(*client.keys("lock:{count}*"))
    # 2 when waiting (ACQUIRE+BLPOP pipelined, RELEASE), 2 uncontended; polls are rare.
    assert per_acquisition <= 4, CountingConnection.counts


def test_works_with_decoded_responses(redis_url) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    a, b = Lock(client, "decoded", ttl=5), Lock(client, "decoded", ttl=5)
    assert a.acquire() and a.owned()
    woke = threading.Thread(target=lambda: b.acquire(timeout=10))
    woke.start()
    while not client.exists(a.keys.queue):
        time.sleep(0.01)
    a.release()
    woke.join(10)
    assert b.owned() and b.fence > a.fence
    b.release()
    client.delete(b.keys.fence)
    client.close()


def test_pipelined_acquire_of_a_free_lock_leaves_no_wake_key(redis_client) -> None:
    """After contention, ACQUIRE+BLPOP go out as one pipeline; winning at once must feed the
    BLPOP (selfwake) and leave nothing behind."""
    from seckill.lock import protocol

    lock = Lock(redis_client, "piped", ttl=5)
    protocol._contended[lock.key] = True
    started = time.monotonic()
    assert lock.acquire(timeout=30)
    assert time.monotonic() - started < 5  # did not sit in BLPOP until the poll interval
    assert not redis_client.keys(lock.key + ":wake:*")
    lock.release()
    assert protocol._contended[lock.key] is False  # no wait: next time a plain ACQUIRE


def test_tokens_are_unique_across_fork() -> None:
    import os

    from seckill.lock.keys import new_token

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the token it would use next
        os.write(write, new_token().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 200).decode()
    os.close(read)
    os.close(write)
    mine = {new_token() for _ in range(1000)}
    assert child not in mine and len(mine) == 1000
