"""A Redis that restarts empty under live id minters: real processes, a private redis-server.

Before the per-host locks, a process starting after the wipe leased the lowest "free" worker
id -- a live holder's -- and both minted the same ids until the old holder's next renewal, which
then failed for good. The unsafe variant (locks off) is run too, to show the rig catches that.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from array import array
from collections import Counter
from pathlib import Path

import pytest
import redis

from devtools.redis_server import RedisServer
from idgen import DEFAULT_LAYOUT, WorkerIdLease
from idgen.clock import FakeClock
from tests.idgen.test_worker_lease import Holder

ROOT = Path(__file__).resolve().parents[2]
TTL_MS = 6000  # renewals every 2 s: the unsafe variant's window of overlap


class Minter:
    def __init__(self, url: str, prefix: str, lock_dir: str, seconds: float, out: Path) -> None:
        self.out = out
        args = [url, prefix, str(TTL_MS), lock_dir, str(seconds), str(out)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.idgen._wipe_minter", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.first_worker_id = -1

    def go(self) -> Minter:
        self.proc.stdin.write("go\n")
        self.proc.stdin.close()
        return self

    def wait_started(self) -> None:
        self.first_worker_id = int(self.proc.stdout.readline())

    def result(self) -> tuple[list[int], dict]:
        assert self.proc.wait(timeout=60) == 0
        ids = array("q")
        ids.frombytes(self.out.read_bytes())
        return ids.tolist(), json.loads(Path(f"{self.out}.json").read_text())


def just_renewed(client: redis.Redis, key: str) -> None:
    """Return right after the holder's heartbeat renewed ``key`` (its PTTL jumps back up)."""
    deadline = time.monotonic() + TTL_MS / 1000
    last = client.pttl(key)
    while time.monotonic() < deadline:
        now = client.pttl(key)
        if now > last:
            break
        last = now
        time.sleep(0.005)
    client.close()


def wipe_with_late_starters(tmp_path: Path, lock_dir: str) -> dict:
    """One minter leases before the wipe, two more start right after it; all mint on."""
    with RedisServer() as server:
        old = Minter(server.url, "wipe", lock_dir, 5.0, tmp_path / "old.bin").go()
        old.wait_started()
        late = [
            Minter(server.url, "wipe", lock_dir, 2.5, tmp_path / f"late{i}.bin") for i in (1, 2)
        ]
        just_renewed(redis.Redis.from_url(server.url), f"wipe:worker:{old.first_worker_id}")
        server.restart()  # no persistence: every lease key and high-water key is gone
        for m in late:  # ... and the old holder's next renewal is ~2 s away
            m.go()
        for m in late:
            m.wait_started()
        results = [m.result() for m in (old, *late)]
    every = Counter(i for ids, _ in results for i in ids)
    last_ms = max(DEFAULT_LAYOUT.parse(i).timestamp_ms for i in results[0][0])
    return {
        "duplicates": sum(c - 1 for c in every.values() if c > 1),
        "old_worker": old.first_worker_id,
        "late_workers": [m.first_worker_id for m in late],
        "old_summary": results[0][1],
        "late_summaries": [r[1] for r in results[1:]],
        "old_last_ms": last_ms,
        "ids": len(every),
    }


def test_a_wipe_never_hands_a_live_holders_worker_id_to_a_newcomer(tmp_path) -> None:
    started_ms = time.time_ns() // 1_000_000
    run = wipe_with_late_starters(tmp_path, str(tmp_path / "locks"))
    assert run["duplicates"] == 0, run
    assert run["old_worker"] not in run["late_workers"], run
    assert len(set(run["late_workers"])) == 2, run
    old = run["old_summary"]
    assert old["failures"] == {} and old["losses"] == 0, run  # minted on throughout ...
    assert old["reclaims"] >= 1, run  # ... after writing its vanished key back
    assert run["old_last_ms"] > started_ms + 4500, run  # ... up to its end, not failing for good
    assert all(s["failures"] == {} for s in run["late_summaries"]), run


def test_unsafe_variant_without_host_locks_mints_duplicates(tmp_path) -> None:
    """The same run with Redis as the only record: the rig sees the duplicates it guards."""
    run = wipe_with_late_starters(tmp_path, "-")
    assert run["old_worker"] in run["late_workers"], run
    assert run["duplicates"] > 0, run
    # ... and the old holder, on finding its id taken, took a fresh one instead of failing
    assert run["old_summary"]["losses"] == 1 and run["old_summary"]["failures"] == {}, run


def test_host_lock_keeps_a_crashed_holders_promise_across_a_wipe() -> None:
    """SIGKILL frees the flock at once; the promise written in the lock file still holds the next
    holder (whose clock lags) past the dead one's lease deadline, though Redis lost the hwm key."""
    with RedisServer() as server:
        holder = Holder(server.url, "crash")
        first_ms = DEFAULT_LAYOUT.parse(holder.first_id).timestamp_ms
        holder.crash()
        server.restart()
        client = redis.Redis.from_url(server.url)
        clock = FakeClock(first_ms - 5_000)
        lease = WorkerIdLease(client, prefix="crash", clock=clock, heartbeat=False)
        assert lease.acquire() == holder.worker_id
        assert lease.high_water_ms > first_ms  # the promise, not the lagging clock
        lease.release()
        client.close()


@pytest.mark.parametrize("lock_dir", ["default", None])
def test_two_leases_in_one_process_never_share_an_id(rc, prefix, lock_dir, tmp_path) -> None:
    kw = {} if lock_dir == "default" else {"lock_dir": None}
    a = WorkerIdLease(rc, prefix=prefix, heartbeat=False, **kw)
    b = WorkerIdLease(rc, prefix=prefix, heartbeat=False, **kw)
    assert {a.acquire(), b.acquire()} == {0, 1}
    a.release()
    b.release()
