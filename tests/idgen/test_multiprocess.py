"""8 real processes x 50k ids from each generator against the real Redis: no duplicates, each
process's ids strictly increasing, and parse() round-trips (checked inside the snowflake workers).

Plain date+INCR costs a Redis round trip per id, so its default form runs 8 x 10k; SECKILL_FULL=1
runs 8 x 50k for it as well.
"""

import multiprocessing as mp
import os
from array import array
from collections.abc import Callable
from pathlib import Path

import pytest

from idgen import DateIncrGenerator
from tests.idgen import _mp_workers

PROCS = 8
PER_PROC = 50_000
FULL = os.environ.get("SECKILL_FULL") == "1"


def run_workers(target: Callable[..., None], args: tuple, tmp_path: Path) -> list[list[int]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCS)
    outs = [str(tmp_path / f"ids-{i}.bin") for i in range(PROCS)]
    procs = [ctx.Process(target=target, args=(*args[:3], out, barrier, *args[3:])) for out in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0, f"worker failed with exit code {p.exitcode}"
    result = []
    for out in outs:
        ids = array("q")
        ids.frombytes(Path(out).read_bytes())
        result.append(ids.tolist())
    return result


def check(per_process: list[list[int]], n: int) -> None:
    for ids in per_process:
        assert len(ids) == n
        assert all(a < b for a, b in zip(ids, ids[1:], strict=False)), "not strictly increasing"
    every = [i for ids in per_process for i in ids]
    assert len(set(every)) == len(every), "duplicate ids across processes"


def test_snowflake_8_processes(rc, redis_url, prefix, tmp_path) -> None:
    per_process = run_workers(_mp_workers.snowflake_worker, (redis_url, prefix, PER_PROC), tmp_path)
    check(per_process, PER_PROC)
    workers = {int(Path(f"{tmp_path}/ids-{i}.bin.worker").read_text()) for i in range(PROCS)}
    assert len(workers) == PROCS, "two live processes shared a worker id"
    assert not rc.keys(f"{prefix}:worker:[0-9]"), "leases not released on close"


@pytest.mark.parametrize("segment_size", [1, 1000], ids=["plain", "segment"])
def test_date_incr_8_processes(redis_url, prefix, tmp_path, segment_size: int) -> None:
    n = PER_PROC if segment_size > 1 or FULL else 10_000
    per_process = run_workers(
        _mp_workers.date_worker, (redis_url, prefix, n, segment_size), tmp_path
    )
    check(per_process, n)
    for ids in per_process:
        day, counter = DateIncrGenerator.parse(ids[-1])
        assert counter <= PROCS * n + PROCS * segment_size
