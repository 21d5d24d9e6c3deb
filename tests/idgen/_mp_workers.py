"""Generator workloads run in spawned processes by test_multiprocess.py (importable by spawn)."""

from array import array
from multiprocessing.synchronize import Barrier
from pathlib import Path

import redis

from idgen import DateIncrGenerator, Snowflake


def _write(out: Path, ids: list[int]) -> None:
    array("q", ids).tofile(out.open("wb"))


def snowflake_worker(url: str, prefix: str, n: int, out: str, barrier: Barrier) -> None:
    """Half single ids, half bulk; checks parse(next_id()) round-trips in-process."""
    gen = Snowflake(redis=redis.Redis.from_url(url), key_prefix=prefix)
    barrier.wait()
    ids = [gen.next_id() for _ in range(n // 2)]
    while len(ids) < n:
        ids.extend(gen.next_ids(min(1000, n - len(ids))))
    for i in ids[::101]:
        p = gen.parse(i)
        assert p.worker_id == gen.worker_id
        assert gen.layout.compose(p.timestamp_ms, p.worker_id, p.sequence) == i
    Path(out + ".worker").write_text(str(gen.worker_id))
    gen.close()
    _write(Path(out), ids)


def date_worker(
    url: str, prefix: str, n: int, out: str, barrier: Barrier, segment_size: int
) -> None:
    gen = DateIncrGenerator(redis.Redis.from_url(url), segment_size, prefix=prefix)
    barrier.wait()
    ids = [gen.next_id() for _ in range(n)]
    _write(Path(out), ids)
