"""Benchmark seckill.lock against redis-py's Lock, python-redis-lock and a spin lock.

    python -m loadtest.bench_lock [--url redis://127.0.0.1:6379/0] [--seconds 2] [--rounds 2]

One run, one Redis, interleaved rounds (each case's best round is reported, so a noisy
neighbour hurts all cases alike). Measures:

- uncontended acquire+release per second, against the physical floor: a bare
  ``SET NX PX`` + ``EVALSHA`` compare-and-delete cycle with no library around it;
- contended: ``--threads`` threads on one key, each looping acquire -> GET/SET a counter ->
  release. Throughput (and its ratio to the same loop in one thread), lock round trips per
  acquisition counted at the client (a counting connection class; the loop's own GET/SET are
  excluded), fairness (fewest acquisitions of any thread / mean), p99 wait, and lost updates.

All keys live under a per-run prefix and are deleted at the end. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import redis
import redis_lock

from seckill.lock import Lock, NaiveLock

COMPARE_AND_DELETE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end "
    "return 0"
)
HANDSHAKE = {"HELLO", "CLIENT", "SELECT", "PING", "AUTH"}


class CountingConnection(redis.Connection):
    """Counts every command sent except the benchmark loop's own GET/SET on its counter."""

    count: ClassVar[int] = 0
    exclude_key: ClassVar[str] = ""
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        name = str(args[0]).upper()
        own_loop = name in ("GET", "SET") and len(args) > 1 and args[1] == self.exclude_key
        if not own_loop and name not in HANDSHAKE:
            with self._guard:
                CountingConnection.count += 1
        super().send_command(*args, **kwargs)


class Bare:
    """The floor: SET NX PX, then EVALSHA compare-and-delete. No waiting, no library."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key, self.token = client, key, os.urandom(16).hex()
        self.sha = client.script_load(COMPARE_AND_DELETE)

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=10_000))

    def release(self) -> None:
        self.client.evalsha(self.sha, 1, self.key, self.token)


@dataclass
class Case:
    name: str
    make: Callable[[redis.Redis, str], Any]
    contended: bool = True


CASES = [
    Case("bare SET NX PX + EVALSHA", Bare, contended=False),
    Case("seckill.lock.Lock", lambda c, k: Lock(c, k, ttl=10)),
    Case("redis-py Lock (sleep 0.1)", lambda c, k: c.lock(k, timeout=10)),
    Case("redis-py Lock (sleep 1ms)", lambda c, k: c.lock(k, timeout=10, sleep=0.001)),
    Case("python-redis-lock", lambda c, k: redis_lock.Lock(c, k, expire=10)),
    Case("spin lock (NaiveLock)", lambda c, k: NaiveLock(c, k, ttl=10)),
]


def uncontended(client: redis.Redis, case: Case, key: str, seconds: float) -> float:
    lock = case.make(client, key)
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            lock.acquire()
            lock.release()
        done += 100
    return done / (seconds + max(0.0, time.perf_counter() - deadline))


@dataclass
class Contended:
    rate: float = 0.0
    round_trips: float = 0.0
    fairness: float = 0.0
    p99_ms: float = 0.0
    lost: int = 0
    counts: list[int] = field(default_factory=list)


def contended(url: str, case: Case, key: str, threads: int, seconds: float) -> Contended:
    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    counter = key + ":counter"
    client.set(counter, 0)
    CountingConnection.exclude_key = counter
    counts, waits = [0] * threads, [[] for _ in range(threads)]
    start_gate = threading.Barrier(threads + 1)
    deadline = 0.0

    def work(i: int) -> None:
        lock = case.make(client, key)
        start_gate.wait()
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            lock.acquire()
            waits[i].append(time.perf_counter() - t0)
            client.set(counter, int(client.get(counter)) + 1)
            lock.release()
            counts[i] += 1

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    CountingConnection.count = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    start_gate.wait()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    total = sum(counts)
    all_waits = sorted(x for per in waits for x in per)
    result = Contended(
        rate=total / elapsed,
        round_trips=CountingConnection.count / max(total, 1),
        fairness=min(counts) / (total / threads) if total else 0.0,
        p99_ms=all_waits[int(0.99 * (len(all_waits) - 1))] * 1000 if all_waits else 0.0,
        lost=total - int(client.get(counter)),
        counts=counts,
    )
    client.close()
    return result


def cleanup(client: redis.Redis, prefix: str) -> None:
    for pattern in (f"*{prefix}*",):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:6379/0"))
    parser.add_argument("--seconds", type=float, default=2.0, help="per case and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    prefix = f"bench-lock-{os.getpid()}-{os.urandom(3).hex()}"
    client = redis.Redis.from_url(args.url)
    print(f"Redis {client.info('server')['redis_version']} at {args.url}, keys '*{prefix}*', "
          f"{args.rounds} interleaved rounds, best round reported")
    try:
        return run(args, client, prefix)
    finally:
        cleanup(client, prefix)
        client.close()


def run(args: argparse.Namespace, client: redis.Redis, prefix: str) -> int:
    solo: dict[str, list[float]] = {c.name: [] for c in CASES}
    single: dict[str, list[Contended]] = {c.name: [] for c in CASES if c.contended}
    multi: dict[str, list[Contended]] = {c.name: [] for c in CASES if c.contended}
    for r in range(args.rounds):
        for i, case in enumerate(CASES):
            solo[case.name].append(
                uncontended(client, case, f"{prefix}:u{i}", args.seconds / 2))
        for i, case in enumerate(c for c in CASES if c.contended):
            key = f"{prefix}:c{i}:{r}"
            single[case.name].append(contended(args.url, case, key + "a", 1, args.seconds))
            multi[case.name].append(
                contended(args.url, case, key + "b", args.threads, args.seconds))

    floor = max(solo[CASES[0].name])
    print("\nUncontended acquire+release (one thread)")
    print(f"{'':28} {'ops/s':>9} {'x floor':>8}")
    for case in CASES:
        best = max(solo[case.name])
        print(f"{case.name:28} {best:9.0f} {best / floor:8.2f}")

    print(f"\nContended: {args.threads} threads, one key, acquire -> GET/SET counter -> release")
    print(f"{'':28} {'1 thr/s':>8} {'N thr/s':>8} {'ratio':>6} {'RT/acq':>7} "
          f"{'fair':>5} {'p99 ms':>7} {'lost':>5}")
    for name in multi:
        one = max(single[name], key=lambda x: x.rate)
        many = max(multi[name], key=lambda x: x.rate)
        print(f"{name:28} {one.rate:8.0f} {many.rate:8.0f} {many.rate / one.rate:6.2f} "
              f"{many.round_trips:7.1f} {many.fairness:5.2f} {many.p99_ms:7.1f} "
              f"{sum(x.lost for x in multi[name]):5d}")
    ours = "seckill.lock.Lock"
    many = max(multi[ours], key=lambda x: x.rate)
    one = max(single[ours], key=lambda x: x.rate)
    print("\nGoals for seckill.lock.Lock:")
    print(f"  uncontended >= 0.90x floor : {max(solo[ours]) / floor:.2f}x")
    print(f"  contended   >= 0.70x 1 thr : {many.rate / one.rate:.2f}x")
    print(f"  round trips <= 4 per acq   : {many.round_trips:.2f}")
    print(f"  fairness    >= 0.50 (min/mean): {many.fairness:.2f}")
    print(f"  p99 wait                   : {many.p99_ms:.1f} ms "
          f"(median of rounds: {statistics.median(x.p99_ms for x in multi[ours]):.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
