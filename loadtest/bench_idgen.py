"""Benchmark the id generators side by side in one run: ``python -m loadtest.bench_idgen``.

Measured (ids per second, best of ``--rounds`` interleaved rounds of ``--seconds`` each, so a
noisy neighbour hurts every contender alike):

* a minimal pure-Python snowflake (one ``threading.Lock``, ``time.time_ns()``) -- the yardstick;
* ``idgen.Snowflake.next_id()`` with its rollback guard and a worker id leased from Redis,
  on 1 thread and shared by 4 threads; ``next_ids()`` (bulk) on 1 thread;
* the ``snowflake-id`` package from PyPI (``SnowflakeGenerator``), with two demonstrations of why
  its raw speed is not comparable: it returns ``None`` past 4,096 ids in a millisecond, and it
  hands out duplicates when threads share it;
* ``idgen.DateIncrGenerator`` plain (one Redis round trip per id) and in segment mode.

Redis keys live under a private prefix (``bench-idgen-<pid>``) and are deleted at the end.
The whole run is bounded: about (8 x rounds x seconds) + 3 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from unittest import mock

import redis
import snowflake as snowflake_id  # the ``snowflake-id`` package

from idgen import DEFAULT_EPOCH_MS, DateIncrGenerator, Snowflake

CEILING = 4_096_000  # 4,096 sequence numbers per millisecond per worker


class MinimalSnowflake:
    """The yardstick: what a competent minimal pure-Python snowflake looks like."""

    def __init__(self, worker_id: int) -> None:
        self._lock = threading.Lock()
        self._worker = worker_id << 12
        self._last = -1
        self._seq = 0

    def next_id(self) -> int:
        with self._lock:
            now = time.time_ns() // 1_000_000
            if now == self._last:
                self._seq = (self._seq + 1) & 4095
                if self._seq == 0:
                    while now <= self._last:
                        now = time.time_ns() // 1_000_000
            else:
                self._seq = 0
            self._last = now
            return ((now - DEFAULT_EPOCH_MS) << 22) | self._worker | self._seq


def rate_single(call: Callable[[], object], seconds: float, batch: int = 1_000) -> float:
    """Ids per second of ``call`` (one id per call) in a tight loop."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(batch):
            call()
        n += batch
    return n / (time.perf_counter() - start)


def rate_bulk(call: Callable[[int], list[int]], seconds: float, chunk: int = 10_000) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        n += len(call(chunk))
    return n / (time.perf_counter() - start)


def rate_threads(call: Callable[[], object], seconds: float, threads: int = 4) -> float:
    """Ids per second of ``threads`` threads sharing ``call``."""
    counts = [0] * threads
    stop = threading.Event()
    go = threading.Barrier(threads + 1)

    def work(slot: int) -> None:
        go.wait()
        while not stop.is_set():
            for _ in range(1_000):
                call()
            counts[slot] += 1_000

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    go.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def best_of(rounds: int, contenders: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Run the contenders in interleaved rounds; keep each one's best rate."""
    best = dict.fromkeys(contenders, 0.0)
    for _ in range(rounds):
        for name, measure in contenders.items():
            best[name] = max(best[name], measure())
    return best


def snowflake_id_none_past_4096() -> tuple[int, int]:
    """Calls and ``None`` results of the package within one (frozen) millisecond."""
    gen = snowflake_id.SnowflakeGenerator(1)
    frozen = time.time()
    with mock.patch.object(sys.modules["snowflake.snowflake"], "time", lambda: frozen):
        results = [next(gen) for _ in range(5_000)]
    return len(results), sum(r is None for r in results)


@contextlib.contextmanager
def busy_switching() -> Iterator[None]:
    """Switch threads as often as possible, so races that exist show up within a second."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _line_tracer(frame: FrameType, event: str, arg: object) -> object:
    """Trace only the generators' own methods, line by line, as a pure-Python debugger would."""
    return _line_tracer if frame.f_code.co_name in ("__next__", "next_id") else None


def duplicates_when_shared(
    call: Callable[[], int | None], threads: int = 4, per_thread: int = 25_000
) -> int:
    """Duplicate ids among ``threads`` threads sharing one generator."""
    out: list[list[int | None]] = [[] for _ in range(threads)]

    def work(slot: int) -> None:
        append = out[slot].append
        for _ in range(per_thread):
            append(call())

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    threading.settrace(_line_tracer)
    try:
        with busy_switching():
            for t in pool:
                t.start()
            for t in pool:
                t.join()
    finally:
        threading.settrace(None)  # type: ignore[arg-type]  # typeshed wants a function
    ids = [i for chunk in out for i in chunk if i is not None]
    return len(ids) - len(set(ids))


def race_demo() -> dict[str, int]:
    """Duplicates when 4 threads share one generator under a line tracer.

    CPython 3.12 switches threads only at Python-level calls and loop back-edges, and the
    package's lock-free ``__next__`` contains neither, so without help its read-modify-write of
    the sequence happens not to be interrupted. A line tracer (pure-Python debugger, profiler)
    or a free-threaded build opens the window; ours holds a lock, so it does not care.
    """
    return {
        "snowflake-id package": duplicates_when_shared(snowflake_id.SnowflakeGenerator(3).__next__),
        "idgen Snowflake": duplicates_when_shared(Snowflake(worker_id=3).next_id),
    }


def run(args: argparse.Namespace) -> dict:
    client = redis.Redis.from_url(args.redis_url)
    prefix = args.prefix
    secs, rounds = args.seconds, args.rounds
    load_before = os.getloadavg()[0]  # bulk rates suffer most when other processes want the CPU
    minimal = MinimalSnowflake(1)
    full = Snowflake(redis=client, key_prefix=prefix)
    package = snowflake_id.SnowflakeGenerator(2)
    package_next = package.__next__
    nones = [0]

    def package_rate() -> float:
        # count Nones too: they are calls that produced no id
        before = time.perf_counter()
        calls = 0
        none = 0
        deadline = before + secs
        while time.perf_counter() < deadline:
            for _ in range(1_000):
                if package_next() is None:
                    none += 1
            calls += 1_000
        nones[0] = max(nones[0], none)
        return (calls - none) / (time.perf_counter() - before)

    plain = DateIncrGenerator(client, prefix=prefix)
    segment = DateIncrGenerator(client, segment_size=args.segment, prefix=prefix)
    try:
        best = best_of(
            rounds,
            {
                "minimal snowflake next_id (1 thread)": lambda: rate_single(minimal.next_id, secs),
                "idgen Snowflake.next_id (1 thread)": lambda: rate_single(full.next_id, secs),
                "minimal snowflake next_id (4 threads, shared)": lambda: rate_threads(
                    minimal.next_id, secs
                ),
                "idgen Snowflake.next_id (4 threads, shared)": lambda: rate_threads(
                    full.next_id, secs
                ),
                "idgen Snowflake.next_ids bulk (1 thread)": lambda: rate_bulk(full.next_ids, secs),
                "snowflake-id package next() (1 thread)": package_rate,
                "idgen DateIncr plain (1 INCR per id)": lambda: rate_single(
                    plain.next_id, secs, batch=100
                ),
                f"idgen DateIncr segment (N={args.segment})": lambda: rate_single(
                    segment.next_id, secs
                ),
            },
        )
        calls, none = snowflake_id_none_past_4096()
        races = race_demo()
    finally:
        full.close()
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()

    m = best["minimal snowflake next_id (1 thread)"]
    n1 = best["idgen Snowflake.next_id (1 thread)"]
    bulk = best["idgen Snowflake.next_ids bulk (1 thread)"]
    pkg = best["snowflake-id package next() (1 thread)"]
    plain_r = best["idgen DateIncr plain (1 INCR per id)"]
    seg_r = best[f"idgen DateIncr segment (N={args.segment})"]
    return {
        "rates": best,
        "ratios": {
            "next_id / minimal (goal >= 0.9)": n1 / m,
            "bulk / layout ceiling 4,096,000 (goal bulk >= 3.5M/s)": bulk / CEILING,
            "bulk / snowflake-id package (goal > 1)": bulk / pkg,
            "segment / plain INCR (goal >= 50)": seg_r / plain_r,
        },
        "snowflake-id package": {
            "None results in one frozen millisecond": f"{none} of {calls} calls",
            "None results during its timed run": nones[0],
            "duplicate ids, 4 threads x 25k sharing one generator under a line tracer": races[
                "snowflake-id package"
            ],
        },
        "idgen Snowflake": {
            "duplicate ids, same test": races["idgen Snowflake"],
        },
        "settings": {
            "seconds": secs,
            "rounds": rounds,
            "segment": args.segment,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "load average before / after": (load_before, os.getloadavg()[0]),
        },
    }


def print_report(report: dict) -> None:
    print(f"{'generator':<48} {'ids/s':>12}")
    for name, rate in report["rates"].items():
        print(f"{name:<48} {rate:>12,.0f}")
    print()
    for name, ratio in report["ratios"].items():
        print(f"{name:<60} {ratio:>7.2f}x")
    for section in ("snowflake-id package", "idgen Snowflake"):
        print(f"\n{section}:")
        for name, value in report[section].items():
            print(f"  {name}: {value}")
    s = report["settings"]
    before, after = s["load average before / after"]
    print(
        f"\nbest of {s['rounds']} interleaved rounds x {s['seconds']} s; Python {s['python']}, "
        f"{s['cpus']} CPUs; 1-min load average {before:.1f} before, {after:.1f} after"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--prefix", default=f"bench-idgen-{os.getpid()}")
    parser.add_argument("--seconds", type=float, default=0.3, help="per measurement round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--segment", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 5 or not 1 <= args.rounds <= 10:
        parser.error("keep the run bounded: 0 < --seconds <= 5, 1 <= --rounds <= 10")
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
