"""Worker-id leases against the real Redis: exclusive, expiring, renewed, handed over safely."""

import multiprocessing as mp
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from multiprocessing.queues import Queue
from pathlib import Path

import pytest
import redis

from devtools.redis_server import RedisServer
from idgen import ClockRollbackError, Snowflake, WorkerIdLease, WorkerLeaseError
from idgen.clock import FakeClock

ROOT = Path(__file__).resolve().parents[2]
TTL_MS = 2000  # generous: heartbeats of a loaded machine may run late


class Holder:
    """A real process holding a lease (tests/idgen/_lease_holder.py)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.idgen._lease_holder", url, str(TTL_MS), prefix],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        worker, first = self.proc.stdout.readline().split()
        self.worker_id, self.first_id = int(worker), int(first)

    def exit_cleanly(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=20) == 0

    def crash(self) -> None:
        self.proc.kill()
        self.proc.wait()


def wait_for(predicate: Callable[[], object], timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - start


def test_processes_get_distinct_ids_and_a_dead_ones_id_returns_only_after_expiry(
    rc, redis_url, prefix
) -> None:
    a, b = Holder(redis_url, prefix), Holder(redis_url, prefix)
    assert {a.worker_id, b.worker_id} == {0, 1}
    key_a = f"{prefix}:worker:{a.worker_id}"
    a.crash()
    assert rc.pttl(key_a) > 0  # a dead holder's lease outlives it ...
    c = Holder(redis_url, prefix)
    assert c.worker_id not in (a.worker_id, b.worker_id)  # ... so nobody gets its id yet
    waited = wait_for(lambda: not rc.exists(key_a), timeout=TTL_MS / 1000 + 2)
    assert waited > 0.1
    promised = int(rc.get(f"{key_a}:hwm"))  # the dead holder's last lease deadline
    d = Holder(redis_url, prefix)
    assert d.worker_id == a.worker_id  # reused only after expiry
    assert Snowflake(worker_id=0).parse(d.first_id).timestamp_ms >= promised
    for h in (b, c, d):
        h.exit_cleanly()
    assert not rc.keys(f"{prefix}:worker:[0-9]")  # clean exit released every lease


def test_heartbeat_keeps_the_lease(rc, prefix) -> None:
    gen = Snowflake(redis=rc, lease_ttl_ms=600, key_prefix=prefix)
    lease = gen._lease
    first_deadline = lease.valid_until_ms
    time.sleep(1.5)  # well past the TTL: only renewals keep the lease
    assert lease.valid_until_ms > first_deadline + 600  # renewed, and not by next_id
    key = f"{prefix}:worker:{gen.worker_id}"
    wait_for(lambda: rc.get(key) == lease.token.encode(), timeout=5)
    gen.next_id()
    gen.close()
    assert not rc.exists(key)


def test_explicit_worker_id_needs_no_redis() -> None:
    gen = Snowflake(worker_id=9)
    assert gen.parse(gen.next_id()).worker_id == 9 and gen._lease is None


def test_stolen_lease_stops_the_generator_and_a_fresh_one_replaces_it(rc, prefix) -> None:
    """Found in another's hands: no more ids with that worker id, and no order fails for it."""
    gen = Snowflake(redis=rc, lease_ttl_ms=600, key_prefix=prefix)
    stolen = gen.worker_id
    rc.set(f"{prefix}:worker:{stolen}", "someone-else")
    ids = []
    deadline = time.monotonic() + 5
    while gen._lease.losses == 0 and time.monotonic() < deadline:
        ids.append(gen.next_id())
        time.sleep(0.001)
    assert gen._lease.losses == 1
    after = [gen.next_id() for _ in range(10)]
    assert {gen.parse(i).worker_id for i in after} == {gen.worker_id} != {stolen}
    assert ids + after == sorted(set(ids + after))  # still strictly increasing
    assert rc.get(f"{prefix}:worker:{stolen}") == b"someone-else"  # theirs, untouched
    gen.close()


def test_handover_respects_previous_holders_last_millisecond(rc, prefix) -> None:
    t0 = 1_795_000_000_000
    clock_a = FakeClock(t0)
    a = Snowflake(redis=rc, key_prefix=prefix, clock=clock_a, sleep=clock_a.sleep)
    last_a = a.next_ids(5)[-1]
    a.close()
    # B's clock is 40 ms behind A's: a small step, waited out, then B continues after A
    clock_b = FakeClock(t0 - 40)
    b = Snowflake(redis=rc, key_prefix=prefix, clock=clock_b, sleep=clock_b.sleep)
    assert b.worker_id == a.worker_id
    first_b = b.next_id()
    assert b.parse(first_b).timestamp_ms > a.parse(last_a).timestamp_ms
    b.close()
    # C's clock is 10 s behind: refusing beats repeating A's and B's ids
    clock_c = FakeClock(t0 - 10_000)
    c = Snowflake(redis=rc, key_prefix=prefix, clock=clock_c, sleep=clock_c.sleep)
    with pytest.raises(ClockRollbackError):
        c.next_id()
    c.close()


def test_crashed_holder_promise_covers_its_whole_lease(rc, prefix) -> None:
    """Without a clean release the high-water mark is the crashed holder's lease deadline."""
    t0 = 1_795_000_000_000
    clock = FakeClock(t0)
    lease = WorkerIdLease(rc, ttl_ms=TTL_MS, prefix=prefix, clock=clock, heartbeat=False)
    lease.acquire()  # ... and never released: a crash
    lease._host_lock.release()  # what the kernel does to a dead process's flock
    hwm = int(rc.get(f"{prefix}:worker:{lease.worker_id}:hwm"))
    assert hwm == lease.valid_until_ms and t0 < hwm < t0 + TTL_MS
    wait_for(lambda: not rc.exists(lease.key(lease.worker_id)), 5)
    clock2 = FakeClock(t0 + 1)  # a successor whose clock lags the crashed holder's
    gen = Snowflake(
        redis=rc, key_prefix=prefix, clock=clock2, sleep=clock2.sleep, max_rollback_ms=2000
    )
    assert gen.worker_id == lease.worker_id
    assert gen.parse(gen.next_id()).timestamp_ms >= hwm
    gen.close()


def test_all_ids_taken(rc, prefix) -> None:
    leases = [WorkerIdLease(rc, max_worker_id=1, prefix=prefix, heartbeat=False) for _ in range(3)]
    assert [lease.acquire() for lease in leases[:2]] == [0, 1]
    with pytest.raises(WorkerLeaseError):
        leases[2].acquire()
    for lease in leases[:2]:
        lease.release()


def test_lease_survives_redis_restart() -> None:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        lease = WorkerIdLease(client, ttl_ms=TTL_MS, heartbeat=False)
        n = lease.acquire()
        server.restart()  # a private server without persistence: the key is gone
        assert not client.exists(lease.key(n))
        lease.renew()  # nobody took it meanwhile, so it is ours again
        assert client.get(lease.key(n)).decode() == lease.token
        lease.release()
        client.close()


def _child_worker_id(gen: Snowflake, queue: Queue) -> None:
    queue.put((gen.worker_id, gen.parse(gen.next_id()).worker_id))


def test_forked_child_takes_its_own_worker_id(rc, prefix) -> None:
    gen = Snowflake(redis=rc, key_prefix=prefix)
    parent_id = gen.worker_id
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with a heartbeat thread alive
        proc = ctx.Process(target=_child_worker_id, args=(gen, queue))
        proc.start()
    inherited, used = queue.get(timeout=20)
    proc.join(timeout=20)
    assert inherited == parent_id  # the object came over as it was ...
    assert used != parent_id  # ... but the child minted with a fresh lease
    assert gen.parse(gen.next_id()).worker_id == parent_id
    gen.close()
