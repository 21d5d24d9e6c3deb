"""date+INCR ids against the real Redis: format, key expiry, day rollover, segments under threads,
and the persistent floor across a Redis restart."""

import threading
from datetime import UTC, date, datetime

import pytest
import redis

from devtools.redis_server import RedisServer
from idgen import DateIncrGenerator, FileFloorStore, MemoryFloorStore


class FakeTime:
    """Unix seconds, moved by hand."""

    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: float = 0) -> datetime:
    return datetime(y, m, d, hh, mm, int(ss), int(ss % 1 * 1e6), tzinfo=UTC)


def increasing(ids: list[int]) -> bool:
    return all(a < b for a, b in zip(ids, ids[1:], strict=False))


def test_plain_ids_format_and_key(rc, prefix) -> None:
    clock = FakeTime(at(2026, 11, 24, 10))
    gen = DateIncrGenerator(rc, clock=clock, prefix=prefix)
    assert [gen.next_id() for _ in range(3)] == [20261124000000001 + i for i in range(3)]
    key = f"{prefix}:{{date}}:20261124"
    assert int(rc.get(key)) == 3
    # that day is long past by Redis's clock: the key gets the grace period, not instant death
    assert 86_000 < rc.ttl(key) <= 86_400
    assert DateIncrGenerator.parse(20261124000000123) == (date(2026, 11, 24), 123)
    with pytest.raises(ValueError):
        DateIncrGenerator.parse(123)


def test_key_expires_a_grace_period_after_its_day(rc, prefix) -> None:
    now = datetime.now(UTC)
    gen = DateIncrGenerator(rc, prefix=prefix)
    gen.next_id()
    day = now.strftime("%Y%m%d")
    end_of_day = datetime.combine(now.date(), datetime.min.time(), UTC).timestamp() + 86_400
    assert rc.expiretime(f"{prefix}:{{date}}:{day}") == int(end_of_day) + 86_400


@pytest.mark.parametrize("segment_size", [1, 50])
def test_day_rollover(rc, prefix, segment_size: int) -> None:
    clock = FakeTime(at(2026, 11, 24, 23, 59, 59.5))
    gen = DateIncrGenerator(rc, segment_size, clock=clock, prefix=prefix)
    before = [gen.next_id() for _ in range(5)]
    clock.now = at(2026, 11, 25, 0, 0, 0.001).timestamp()
    after = [gen.next_id() for _ in range(5)]
    assert {i // 10**9 for i in before} == {20261124}
    assert after == [20261125000000001 + i for i in range(5)]  # yesterday's block left behind
    clock.now = at(2026, 11, 24, 23, 59, 59.9).timestamp()  # clock stepped back over midnight
    again = gen.next_ids(3)
    assert increasing(before + after + again) and again[0] // 10**9 == 20261125


def test_segment_refill_under_threads(rc, prefix) -> None:
    gen = DateIncrGenerator(rc, segment_size=100, prefix=prefix)
    results: list[list[int]] = [[] for _ in range(8)]

    def work(out: list[int], bulk: bool) -> None:
        for _ in range(50 if bulk else 5_000):
            out.extend(gen.next_ids(100)) if bulk else out.append(gen.next_id())

    threads = [threading.Thread(target=work, args=(results[i], i % 4 == 0)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for r in results for i in r]
    assert all(increasing(r) for r in results)
    assert len(every) == len(set(every)) == 6 * 5_000 + 2 * 50 * 100
    # every block fetched was used up: segments cost one INCRBY per 100 ids, none wasted
    assert sorted(every) == list(range(min(every), min(every) + len(every)))
    day = datetime.now(UTC).strftime("%Y%m%d")
    assert int(rc.get(f"{prefix}:{{date}}:{day}")) == len(every)


def test_bulk_takes_rest_of_block_then_one_incrby(rc, prefix) -> None:
    gen = DateIncrGenerator(rc, segment_size=10, prefix=prefix)
    first = gen.next_id()
    ids = gen.next_ids(25)  # 9 left in the block, then INCRBY 16
    assert ids == list(range(first + 1, first + 26))
    assert gen.next_id() == first + 26  # a new block of 10 (counter was at 26)
    assert int(rc.get(gen.key(str(first // 10**9)))) == 36


def test_counter_overflow_raises(rc, prefix) -> None:
    gen = DateIncrGenerator(rc, digits=2, prefix=prefix)
    gen.next_ids(99)
    with pytest.raises(OverflowError):
        gen.next_id()


def test_without_floor_a_redis_restart_goes_backwards() -> None:
    """Why the floor exists: a Redis without persistence restarts the day's counter at 1."""
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        gen = DateIncrGenerator(client)
        before = gen.next_ids(10)
        server.restart()
        assert gen.next_id() <= before[-1]
        client.close()


@pytest.mark.parametrize("segment_size", [1, 100])
def test_floor_survives_redis_restart(tmp_path, segment_size: int) -> None:
    store = FileFloorStore(tmp_path / "floor.json")
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        a = DateIncrGenerator(client, segment_size, floor_store=store, floor_reserve=500)
        b = DateIncrGenerator(client, segment_size, floor_store=store, floor_reserve=500)
        before = [a.next_id() for _ in range(1_234)] + b.next_ids(777)
        server.restart()  # every key lost
        after_b = [b.next_id() for _ in range(300)]
        after_a = a.next_ids(300)
        fresh = DateIncrGenerator(client, segment_size, floor_store=store).next_ids(5)
        # a and b may first finish blocks they reserved before the restart; all else is new
        assert min(fresh) > max(before + after_a + after_b)
        assert len(set(before + after_a + after_b + fresh)) == len(before) + 605
        for gen_ids in (before[:1_234] + after_a, before[1_234:] + after_b):
            assert increasing(gen_ids)
        client.close()
    day = next(iter(store._read()))
    assert store.load(day) >= max(before) % 10**9


def test_floor_store_writes_only_per_reserve(rc, prefix) -> None:
    class Counting(MemoryFloorStore):
        writes = 0

        def raise_to(self, day: str, value: int) -> int:
            Counting.writes += 1
            return super().raise_to(day, value)

    store = Counting()
    gen = DateIncrGenerator(rc, floor_store=store, floor_reserve=1000, prefix=prefix)
    ids = gen.next_ids(1)
    ids += [gen.next_id() for _ in range(2_999)]
    assert increasing(ids)
    assert 3 <= Counting.writes <= 4  # ~ one durable write per 1,000 ids, not per id


def test_file_floor_store_is_monotonic(tmp_path) -> None:
    store = FileFloorStore(tmp_path / "f.json", keep_days=2)
    assert store.load("20261124") == 0
    assert store.raise_to("20261124", 10) == 10
    assert store.raise_to("20261124", 5) == 10
    store.raise_to("20261125", 1)
    store.raise_to("20261126", 1)
    assert store.load("20261124") == 0  # pruned: only the last keep_days days are kept
    assert FileFloorStore(tmp_path / "f.json").load("20261126") == 1
