"""Snowflake generator in one process: ordering, exhaustion, clock rollback, threads, bulk, close.

Clock-dependent behaviour runs on :class:`idgen.clock.FakeClock`, whose ``sleep`` advances it.
"""

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idgen import ClockRollbackError, Snowflake, SnowflakeLayout
from idgen.clock import FakeClock

T0 = 1_795_000_000_000  # some millisecond in 2026


def fake_gen(clock: FakeClock, **kw) -> Snowflake:
    return Snowflake(worker_id=5, clock=clock, sleep=clock.sleep, **kw)


def strictly_increasing(ids: list[int]) -> bool:
    return all(a < b for a, b in zip(ids, ids[1:], strict=False))


def test_ids_increase_and_parse_round_trips() -> None:
    gen = Snowflake(worker_id=7)
    ids = [gen.next_id() for _ in range(10_000)]
    assert strictly_increasing(ids)
    for i in ids[::997]:
        p = gen.parse(i)
        assert p.worker_id == 7 == gen.worker_id
        assert gen.layout.compose(p.timestamp_ms, p.worker_id, p.sequence) == i
        assert p.datetime.tzinfo is not None


def test_fields_on_a_fake_clock() -> None:
    clock = FakeClock(T0)
    gen = fake_gen(clock)
    a, b = gen.next_id(), gen.next_id()
    assert gen.parse(a)[::2] == (T0, 5) and gen.parse(a).sequence == 0
    assert gen.parse(b).sequence == 1
    clock.advance_ms(1)
    assert gen.parse(gen.next_id()).sequence == 0


def test_sequence_exhaustion_waits_for_next_millisecond() -> None:
    clock = FakeClock(T0)
    gen = fake_gen(clock)
    ids = [gen.next_id() for _ in range(4096)]
    assert {gen.parse(i).timestamp_ms for i in ids} == {T0}
    nxt = gen.next_id()  # sequence used up: must wait, the fake clock moves on sleep
    assert gen.parse(nxt).timestamp_ms > T0 and gen.parse(nxt).sequence == 0
    assert clock.slept


def test_small_rollback_is_waited_out() -> None:
    clock = FakeClock(T0)
    gen = fake_gen(clock, max_rollback_ms=100)
    before = gen.next_id()
    clock.set_ms(T0 - 60)
    after = gen.next_id()
    assert after > before
    assert gen.parse(after).timestamp_ms >= T0
    assert sum(clock.slept) >= 0.058  # it really waited for the clock to come back


def test_large_rollback_raises_and_nothing_repeats() -> None:
    clock = FakeClock(T0)
    gen = fake_gen(clock, max_rollback_ms=100)
    before = [gen.next_id() for _ in range(3)]
    clock.set_ms(T0 - 5_000)
    with pytest.raises(ClockRollbackError) as err:
        gen.next_id()
    assert err.value.behind_ms == 5_000
    with pytest.raises(ClockRollbackError):
        gen.next_ids(10)
    clock.set_ms(T0)  # clock caught up: the generator goes on after the last id
    after = gen.next_ids(3)
    assert after[0] > before[-1] and strictly_increasing(before + after)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-400, 3), min_size=1, max_size=60))
def test_random_clock_walk_never_repeats(steps: list[int]) -> None:
    clock = FakeClock(T0)
    gen = fake_gen(clock, max_rollback_ms=100)
    ids = [gen.next_id()]
    for step in steps:
        clock.advance_ms(step)
        behind = gen.parse(ids[-1]).timestamp_ms - clock.ms
        try:
            ids.extend(gen.next_ids(1 + step % 3) if step % 2 else [gen.next_id()])
        except ClockRollbackError:
            assert behind > 100
        else:
            assert behind <= 100
    assert strictly_increasing(ids)


def test_threads_share_one_generator_without_duplicates() -> None:
    gen = Snowflake(worker_id=3)
    results: list[list[int]] = [[] for _ in range(4)]

    def work(out: list[int], bulk: bool) -> None:
        for _ in range(100 if bulk else 20_000):
            if bulk:
                out.extend(gen.next_ids(200))
            else:
                out.append(gen.next_id())

    threads = [threading.Thread(target=work, args=(results[i], i % 2 == 0)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(strictly_increasing(r) for r in results)
    every = [i for r in results for i in r]
    assert len(every) == len(set(every)) == 2 * 20_000 + 2 * 100 * 200


def test_bulk_spans_milliseconds() -> None:
    gen = Snowflake(worker_id=1)
    ids = gen.next_ids(20_000)  # at least 5 milliseconds' worth of sequence
    assert len(ids) == len(set(ids)) == 20_000 and strictly_increasing(ids)
    stamps = {gen.parse(i).timestamp_ms for i in ids}
    assert len(stamps) >= 5
    assert gen.next_ids(0) == []
    assert gen.next_id() > ids[-1]


def test_bulk_on_fake_clock_fills_each_millisecond() -> None:
    clock = FakeClock(T0)
    gen = fake_gen(clock)
    ids = gen.next_ids(4096 * 3)
    per_ms: dict[int, int] = {}
    for i in ids:
        per_ms[gen.parse(i).timestamp_ms] = per_ms.get(gen.parse(i).timestamp_ms, 0) + 1
    assert list(per_ms.values()) == [4096, 4096, 4096]


def test_closed_generator_refuses() -> None:
    gen = Snowflake(worker_id=1)
    gen.next_id()
    gen.close()
    with pytest.raises(RuntimeError):
        gen.next_id()
    with pytest.raises(RuntimeError):
        gen.next_ids(3)
    gen.close()  # idempotent


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        Snowflake()
    with pytest.raises(ValueError):
        Snowflake(worker_id=1024)
    with pytest.raises(ValueError):  # clock before the epoch would give negative ids
        Snowflake(worker_id=1, clock=FakeClock(1_000))


def test_layout_running_out_of_time_raises() -> None:
    layout = SnowflakeLayout(epoch_ms=T0 - 1000, timestamp_bits=10)  # 1,024 ms of range
    clock = FakeClock(T0)
    gen = Snowflake(worker_id=1, layout=layout, clock=clock, sleep=clock.sleep)
    gen.next_id()
    clock.advance_ms(100)
    with pytest.raises(OverflowError):
        gen.next_id()


def test_custom_layout_generates_parseable_ids() -> None:
    layout = SnowflakeLayout(worker_bits=4, sequence_bits=18)
    gen = Snowflake(worker_id=15, layout=layout)
    ids = gen.next_ids(300_000)
    assert strictly_increasing(ids)
    assert {gen.parse(i).worker_id for i in ids} == {15}
    assert max(gen.parse(i).sequence for i in ids) > 4096
