"""Benchmark seckill.lock (and its redis-py compatible face) against redis-py's Lock,
python-redis-lock and a spin lock.

    python -m loadtest.bench_lock [--url redis://127.0.0.1:6379/0] [--seconds 3] [--slices 4]

One run, one Redis; every figure is summed over short slices interleaved across all cases,
so a noisy neighbour hurts all cases alike. Measures:

- uncontended acquire+release per second, against the physical floor: a bare
  ``SET NX PX`` + ``EVALSHA`` compare-and-delete cycle with no library around it;
- contended: ``--threads`` threads on one key, each looping acquire -> GET/SET a counter ->
  release. Throughput (and its ratio to the same loop in one thread), lock round trips per
  acquisition counted at the client (a counting connection class; the loop's own GET/SET are
  excluded), fairness (fewest acquisitions of any thread / mean), p99 wait, lost updates, and
  the client CPU per acquisition (process time: what other processes on the box cannot skew).

All keys live under a per-run prefix and are deleted at the end. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import redis
import redis_lock

from seckill.lock import Lock, NaiveLock, RedisPyCompatibleLock

COMPARE_AND_DELETE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
HANDSHAKE = {"HELLO", "CLIENT", "SELECT", "PING", "AUTH"}


class CountingConnection(redis.Connection):
    """Counts round trips (packed sends: one per command, one per pipeline) per command name,
    leaving out the connection handshake and the benchmark loop's own GET/SET on its counter.
    """

    counts: ClassVar[Counter[str]] = Counter()
    exclude_key: ClassVar[str] = ""
    _guard: ClassVar[threading.Lock] = threading.Lock()
    _name: str | None = None

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        name = str(args[0]).upper()
        own_loop = name in ("GET", "SET") and len(args) > 1 and args[1] == self.exclude_key
        self._name = "" if own_loop or name in HANDSHAKE else name
        try:
            super().send_command(*args, **kwargs)
        finally:
            self._name = None

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        name = "PIPELINE" if self._name is None else self._name
        if name:
            with self._guard:
                self.counts[name] += 1
        super().send_packed_command(command, check_health)

    @classmethod
    def reset(cls) -> None:
        with cls._guard:
            cls.counts.clear()

    @classmethod
    def total(cls) -> int:
        return sum(cls.counts.values())


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
    Case("seckill Lock (fair=False)", lambda c, k: Lock(c, k, ttl=10, fair=False)),
    Case(
        "RedisPyCompatibleLock",
        lambda c, k: c.lock(k, timeout=10, lock_class=RedisPyCompatibleLock),
    ),
    Case("redis-py Lock (sleep 0.1)", lambda c, k: c.lock(k, timeout=10)),
    Case("redis-py Lock (sleep 1ms)", lambda c, k: c.lock(k, timeout=10, sleep=0.001)),
    Case("python-redis-lock", lambda c, k: redis_lock.Lock(c, k, expire=10)),
    Case("spin lock (NaiveLock)", lambda c, k: NaiveLock(c, k, ttl=10)),
]


def uncontended(
    client: redis.Redis, prefix: str, seconds: float, burst: float = 0.05
) -> dict[str, float]:
    """Acquire+release/s of every case, one thread, in 50 ms bursts taken round-robin."""
    locks = [case.make(client, f"{prefix}:u{i}") for i, case in enumerate(CASES)]
    ops, spent = [0] * len(CASES), [0.0] * len(CASES)
    while min(spent) < seconds:
        for i, lock in enumerate(locks):
            started = time.perf_counter()
            while True:
                for _ in range(20):
                    lock.acquire()
                    lock.release()
                ops[i] += 20
                elapsed = time.perf_counter() - started
                if elapsed >= burst:
                    break
            spent[i] += elapsed
    return {case.name: ops[i] / spent[i] for i, case in enumerate(CASES)}


@dataclass
class Contended:
    """Totals over all slices of one case (a slice = one timed run of all threads)."""

    acquisitions: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    commands: int = 0
    lost: int = 0
    counts: list[int] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.acquisitions / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_us(self) -> float:
        """Client CPU (all threads, this process) per acquisition: immune to other processes
        stealing the machine, unlike throughput."""
        return self.cpu / max(self.acquisitions, 1) * 1e6

    @property
    def round_trips(self) -> float:
        return self.commands / max(self.acquisitions, 1)

    @property
    def fairness(self) -> float:
        mean = self.acquisitions / len(self.counts) if self.counts else 0
        return min(self.counts) / mean if mean else 0.0

    @property
    def p99_ms(self) -> float:
        waits = sorted(self.waits)
        return waits[int(0.99 * (len(waits) - 1))] * 1000 if waits else 0.0


def contended(
    url: str, case: Case, key: str, threads: int, seconds: float, into: Contended
) -> None:
    """One slice: ``threads`` threads loop on one key for ``seconds``; adds to ``into``."""
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
    CountingConnection.reset()
    deadline = time.perf_counter() + seconds
    started, cpu_started = time.perf_counter(), time.process_time()
    start_gate.wait()
    for w in workers:
        w.join()
    into.elapsed += time.perf_counter() - started
    into.cpu += time.process_time() - cpu_started
    into.commands += CountingConnection.total()
    into.acquisitions += sum(counts)
    into.lost += sum(counts) - int(client.get(counter))
    into.counts = [a + b for a, b in zip(into.counts or [0] * threads, counts, strict=True)]
    into.waits.extend(x for per in waits for x in per)
    client.close()


def cleanup(client: redis.Redis, prefix: str) -> None:
    for pattern in (f"*{prefix}*",):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        help="measured time per case and mode (split into slices)",
    )
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    prefix = f"bench-lock-{os.getpid()}-{os.urandom(3).hex()}"
    client = redis.Redis.from_url(args.url)
    print(
        f"Redis {client.info('server')['redis_version']} at {args.url}, keys '*{prefix}*', "
        f"{args.seconds:g} s per case and mode in {args.slices} interleaved slices"
    )
    try:
        return run(args, client, prefix)
    finally:
        cleanup(client, prefix)
        client.close()


def run(args: argparse.Namespace, client: redis.Redis, prefix: str) -> int:
    # Short slices, interleaved across cases and modes, summed: a noisy neighbour that comes
    # and goes hits every case about equally.
    slice_s = args.seconds / args.slices
    single = {c.name: Contended() for c in CASES if c.contended}
    multi = {c.name: Contended() for c in CASES if c.contended}
    for r in range(args.slices):
        for i, case in enumerate(c for c in CASES if c.contended):
            key = f"{prefix}:c{i}:{r}"
            contended(args.url, case, key + "a", 1, slice_s, single[case.name])
            contended(args.url, case, key + "b", args.threads, slice_s, multi[case.name])

    solo = uncontended(client, prefix, args.seconds)
    floor = solo[CASES[0].name]
    print("\nUncontended acquire+release, one thread")
    print(f"{'':28} {'ops/s':>9} {'x floor':>8}")
    for case in CASES:
        print(f"{case.name:28} {solo[case.name]:9.0f} {solo[case.name] / floor:8.2f}")

    print(f"\nContended: {args.threads} threads on one key, acquire -> GET+SET counter -> release")
    print(
        f"{'':28} {'1 thr/s':>8} {'N thr/s':>8} {'ratio':>6} {'RT/acq':>7} "
        f"{'fair':>5} {'p99 ms':>7} {'lost':>5} {'CPU us/acq 1/N':>15}"
    )
    for name, many in multi.items():
        one = single[name]
        print(
            f"{name:28} {one.rate:8.0f} {many.rate:8.0f} {many.rate / one.rate:6.2f} "
            f"{many.round_trips:7.1f} {many.fairness:5.2f} {many.p99_ms:7.1f} {many.lost:5d} "
            f"{one.cpu_us:7.0f}/{many.cpu_us:<7.0f}"
        )
    ours = "seckill.lock.Lock"
    many, one = multi[ours], single[ours]
    print("\nseckill.lock.Lock against its goals:")
    print(f"  uncontended / bare floor    {solo[ours] / floor:5.2f}   (goal >= 0.90)")
    print(f"  contended / one thread      {many.rate / one.rate:5.2f}   (goal >= 0.70)")
    print(f"  round trips per acquisition {many.round_trips:5.2f}   (goal <= 4)")
    print(f"  fewest / mean acquisitions  {many.fairness:5.2f}   (goal >= 0.50)")
    print(f"  p99 wait                    {many.p99_ms:5.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
