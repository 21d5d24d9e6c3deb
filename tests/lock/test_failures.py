"""Failure modes: a killed holder, a paused holder, a lost lease, Redis restarted or gone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from devtools.redis_server import ROOT, RedisServer
from seckill.lock import Lock, LockNotOwnedError, LockUnavailableError, NaiveLock
from tests.lock._workers import HOLD_FOREVER


def test_sigkilled_holder_frees_after_ttl_not_forever(redis_client, redis_url) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_FOREVER, redis_url, "killed", "2.0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        dead_fence = int(child.stdout.readline())
        waiter = Lock(redis_client, "killed", ttl=5)
        assert not waiter.acquire(blocking=False)
        child.kill()  # SIGKILL: no release, the watchdog thread dies with the process
        child.wait()
        started = time.monotonic()
        assert waiter.acquire(timeout=30)  # after the 2 s lease, not never
        assert time.monotonic() - started < 30
        assert waiter.fence > dead_fence
        waiter.release()
    finally:
        child.kill()
        child.wait()


def test_naive_lock_crash_between_setnx_and_expire_holds_forever(redis_client) -> None:
    class CrashBeforeExpire:
        """The naive lock's client, dying right after SETNX (e.g. OOM-killed)."""

        def __getattr__(self, name):
            return getattr(redis_client, name)

        def pexpire(self, *args):
            raise SystemExit("process died")

    with pytest.raises(SystemExit):
        NaiveLock(CrashBeforeExpire(), "forever", ttl=1).acquire()
    assert redis_client.ttl("lock:{forever}") == -1  # no TTL: locked until someone DELs it


def test_paused_holder_loses_lease_and_cannot_release_the_next_holders_lock(redis_client) -> None:
    a = Lock(redis_client, "paused", ttl=0.3)
    b = Lock(redis_client, "paused", ttl=10)
    a.acquire()
    time.sleep(1.0)  # a GC pause / stalled VM, past the lease; no watchdog
    assert b.acquire(timeout=10)
    with pytest.raises(LockNotOwnedError):
        a.extend()
    with pytest.raises(LockNotOwnedError):
        a.release()
    assert b.owned() and redis_client.get(b.key).decode() == b.token
    assert b.fence > a.fence  # a resource checking fences rejects a's late writes
    b.release()


def test_watchdog_keeps_the_lock_through_three_ttls(redis_client) -> None:
    a = Lock(redis_client, "dog", ttl=1.5, watchdog=True)
    a.acquire()
    renewal = a._watchdog
    time.sleep(4.5)  # 3 x TTL; renewals every 0.5 s
    assert a.owned() and not a.lease_lost
    assert not Lock(redis_client, "dog", ttl=1.0).acquire(blocking=False)
    a.release()
    assert not a.locked()
    assert renewal is not None and not renewal.active  # no longer renewed


def test_watchdog_reports_a_lost_lease_and_does_not_renew_it(redis_client) -> None:
    lost = threading.Event()
    a = Lock(redis_client, "dog-lost", ttl=1.0, watchdog=True, on_lost=lambda lock: lost.set())
    a.acquire()
    redis_client.set(a.key, "new-holder", px=60_000)  # lease gone, another holder in
    assert lost.wait(10)
    assert a.lease_lost and not a.owned()
    assert redis_client.pttl(a.key) > 50_000  # the other holder's lease was not touched
    with pytest.raises(LockNotOwnedError):
        a.release()


@pytest.fixture
def private_redis():
    """A private server and a client with a bounded retry policy (redis-py 8 defaults to 10
    retries with up to 1 s backoff, ~5 s before a dead server surfaces as an error)."""
    server = RedisServer().start()
    client = redis.Redis(
        host="127.0.0.1",
        port=server.port,
        socket_timeout=2,
        socket_connect_timeout=1,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 2),
    )
    yield server, client
    client.close()
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


def test_redis_restarted_mid_hold(private_redis) -> None:
    server, client = private_redis
    a = Lock(client, "restart", ttl=30)
    a.acquire()
    server.restart()  # no persistence: the lease is gone, and so are the cached scripts
    with pytest.raises(LockNotOwnedError):
        a.release()
    b = Lock(client, "restart", ttl=30)
    assert b.acquire(timeout=5)  # NOSCRIPT is handled by falling back to EVAL
    b.release()


def test_script_cache_flushed_before_a_pipelined_acquire(private_redis) -> None:
    from seckill.lock import protocol

    server, client = private_redis
    lock = Lock(client, "flushed", ttl=30, poll_interval=0.2)
    protocol._contended[lock.key] = True  # next acquire pipelines EVALSHA + BLPOP
    client.script_flush()
    assert lock.acquire(timeout=10)  # NOSCRIPT in the pipeline: redone with EVAL
    lock.release()


def test_redis_unreachable_gives_a_clear_error_without_hanging(private_redis) -> None:
    server, client = private_redis
    a = Lock(client, "gone", ttl=30)
    a.acquire()
    server.stop()
    started = time.monotonic()
    with pytest.raises(LockUnavailableError, match="unreachable"):
        a.release()
    with pytest.raises(LockUnavailableError):
        Lock(client, "gone", ttl=30).acquire(timeout=1)
    assert time.monotonic() - started < 10  # generous; typically a few milliseconds


def test_waiter_gets_an_error_when_redis_dies_mid_wait(private_redis) -> None:
    server, client = private_redis
    Lock(client, "mid-wait", ttl=30).acquire()
    outcome: list[object] = []

    def wait() -> None:
        try:
            outcome.append(Lock(client, "mid-wait", ttl=30).acquire(timeout=60))
        except LockUnavailableError as exc:
            outcome.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    while not client.exists("lock:{mid-wait}:queue"):
        time.sleep(0.01)
    started = time.monotonic()
    server.kill()
    t.join(40)
    assert not t.is_alive() and time.monotonic() - started < 20  # far below the 60 s timeout
    assert isinstance(outcome[0], LockUnavailableError)


def test_frozen_redis_surfaces_as_unavailable_not_a_hang(private_redis) -> None:
    """A server that stops answering (SIGSTOP: a partition, a stuck VM) is not a closed
    socket; the waiter's BLPOP is kept under the client's socket timeout, so the error
    surfaces after a few socket timeouts instead of the 60 s acquire timeout."""
    server, _ = private_redis
    client = redis.Redis(
        host="127.0.0.1",
        port=server.port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
    )
    Lock(client, "frozen", ttl=30).acquire()
    outcome: list[object] = []

    def wait() -> None:
        try:
            outcome.append(Lock(client, "frozen", ttl=30).acquire(timeout=60))
        except LockUnavailableError as exc:
            outcome.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    while not client.exists("lock:{frozen}:queue"):
        time.sleep(0.01)
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        t.join(40)
        assert not t.is_alive() and time.monotonic() - started < 30
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert isinstance(outcome[0], LockUnavailableError)
    client.close()
