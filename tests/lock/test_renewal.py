"""Lease renewal by one shared thread per process: many leases, lost leases, release, fork."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
import warnings

import pytest
import redis
import redis.asyncio as aioredis

from seckill.lock import Lock, LockNotOwnedError, LockUnavailableError
from seckill.lock.aio import AsyncLock
from seckill.lock.watchdog import RENEWER, Renewer


def renewer_threads() -> list[threading.Thread]:
    """The scheduler thread and its I/O workers (named ``<name>-io-<n>``)."""
    return [t for t in threading.enumerate() if t.name.startswith(RENEWER.name)]


def test_many_locks_stay_alive_with_a_few_shared_renewal_threads(redis_client) -> None:
    warm = Lock(redis_client, "renew-warm", ttl=0.6, watchdog=True)
    warm.acquire()  # the shared scheduler thread exists from here on
    others, leases_before = threading.active_count() - len(renewer_threads()), len(RENEWER)
    locks = [Lock(redis_client, f"renew-many-{i}", ttl=0.6, watchdog=True) for i in range(100)]
    for lock in locks:
        assert lock.acquire(blocking=False)
    assert len(RENEWER) == leases_before + 100
    time.sleep(2.0)  # > 3 x TTL; each lease renewed every 0.2 s
    # No thread per lock: one scheduler and at most max_workers I/O threads, for 101 leases.
    assert 2 <= len(renewer_threads()) <= 1 + RENEWER.max_workers
    assert threading.active_count() == others + len(renewer_threads())
    for lock in locks:
        assert not lock.lease_lost and redis_client.get(lock.key).decode() == lock.token
    threads = len(renewer_threads())
    for lock in locks:
        lock.release()
    warm.release()
    assert len(RENEWER) == leases_before - 1
    assert len(renewer_threads()) == threads  # nothing joined, nothing started on release


def test_stolen_and_deleted_leases_are_reported_while_the_others_are_kept(redis_client) -> None:
    lost: dict[str, threading.Event] = {}
    locks = []
    for i in range(6):
        lost[f"renew-steal-{i}"] = threading.Event()
        locks.append(
            Lock(
                redis_client,
                f"renew-steal-{i}",
                ttl=0.6,
                watchdog=True,
                on_lost=lambda lock: lost[lock.name].set(),
            )
        )
        assert locks[-1].acquire(blocking=False)
    stolen, deleted, kept = locks[0], locks[1], locks[2:]
    redis_client.set(stolen.key, "new-holder", px=60_000)
    redis_client.delete(deleted.key)
    assert lost[stolen.name].wait(5) and lost[deleted.name].wait(5)
    assert stolen.lease_lost and deleted.lease_lost
    assert redis_client.pttl(stolen.key) > 55_000  # the new holder's lease was not touched
    assert not redis_client.exists(deleted.key)  # and a deleted key is not brought back
    time.sleep(2.0)  # > 3 x TTL
    for lock in kept:
        assert not lost[lock.name].is_set() and not lock.lease_lost and lock.owned()
        lock.release()
    for lock in (stolen, deleted):
        with pytest.raises(LockNotOwnedError):
            lock.release()


def test_release_stops_renewal_of_that_token(redis_client) -> None:
    a = Lock(redis_client, "renew-release", ttl=0.3, watchdog=True)
    renewals = []
    renew_steps = a._renew_steps
    a._renew_steps = lambda token: (renewals.append(token), renew_steps(token))[1]
    a.acquire()
    token = a.token
    time.sleep(0.45)
    assert len(renewals) >= 2 and set(renewals) == {token}
    a.release()
    done = len(renewals)
    # Put the released token back: a renewal still running would keep extending it.
    redis_client.set(a.key, token, px=300)
    time.sleep(0.8)
    assert not redis_client.exists(a.key)
    assert len(renewals) == done


def test_a_slow_renewal_does_not_starve_the_others() -> None:
    renewer = Renewer(name="test-renewer-slow")
    counts = {"slow": 0, "a": 0, "b": 0}

    def renew(name: str, pause: float):
        def call() -> bool:
            counts[name] += 1
            time.sleep(pause)
            return True

        return call

    lost = threading.Event()
    handles = [
        renewer.register(renew("slow", 0.3), interval=0.05, lease=10, on_lost=lost.set),
        renewer.register(renew("a", 0), interval=0.05, lease=10, on_lost=lost.set),
        renewer.register(renew("b", 0), interval=0.05, lease=10, on_lost=lost.set),
    ]
    time.sleep(1.5)
    for handle in handles:
        handle.cancel()
    assert counts["a"] >= 3 and counts["b"] >= 3 and counts["slow"] >= 3
    assert not lost.is_set() and len(renewer) == 0


def test_unreachable_is_retried_until_a_whole_lease_passed() -> None:
    renewer = Renewer(name="test-renewer-unreachable")
    replies = iter([None, True, None, None, None, None, None, None, None, None])

    def renew() -> bool:
        reply = next(replies, None)
        if reply is None:
            raise LockUnavailableError("Redis unreachable")
        return reply

    lost = threading.Event()
    started = time.monotonic()
    handle = renewer.register(renew, interval=0.05, lease=0.3, on_lost=lost.set)
    assert lost.wait(5)
    # Success at ~0.1 s; lost only once 0.3 s passed after it without another.
    assert time.monotonic() - started >= 0.38
    assert handle.state == "lost" and len(renewer) == 0
    handle.cancel()  # a no-op now


def test_forked_child_renews_its_own_leases_not_the_parents(redis_client, redis_url) -> None:
    parent = Lock(redis_client, "renew-fork-parent", ttl=0.6, watchdog=True)
    parent.acquire()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        pid = os.fork()
    if pid == 0:  # child: exit status 0 only if every check passed
        status = 1
        try:
            assert len(RENEWER) == 0 and RENEWER.thread is None
            parent._watchdog.cancel()  # the parent's registration: a no-op here
            client = redis.Redis.from_url(redis_url)
            child = Lock(client, "renew-fork-child", ttl=0.3, watchdog=True)
            assert child.acquire(blocking=False)
            assert RENEWER.thread is not None and RENEWER.thread.is_alive()
            time.sleep(1.0)
            assert child.owned() and not child.lease_lost
            child.release()
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    time.sleep(0.7)  # past the parent's TTL: still renewed in the parent
    assert parent.owned() and not parent.lease_lost
    parent.release()


def test_a_lock_dropped_without_release_stops_being_renewed(redis_client) -> None:
    leases = len(RENEWER)
    lock = Lock(redis_client, "renew-dropped", ttl=0.4, watchdog=True)
    assert lock.acquire()
    key = lock.key
    del lock
    gc.collect()
    time.sleep(1.2)  # three leases: the renewer held it only weakly, so it ran out
    assert not redis_client.exists(key)
    assert len(RENEWER) == leases


def test_an_async_lock_dropped_without_release_stops_being_renewed(redis_client, redis_url):
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        lock = AsyncLock(client, "renew-dropped-aio", ttl=0.4, watchdog=True)
        assert await lock.acquire()
        key = lock.key
        del lock
        gc.collect()
        await asyncio.sleep(1.2)
        assert not await client.exists(key)
        await client.aclose()

    asyncio.run(scenario())
