"""The figures and the paragraph are computed from the stamps: checked on hand-made records."""

from __future__ import annotations

from seckill.lab import analysis, narrative
from seckill.lab.params import RunParameters
from seckill.lab.recorder import Attempt


def attempt(buyer, entered, wrote, released=None, *, read=None, stock=None, code="created", **kw):
    return Attempt(
        buyer=buyer,
        attempt=kw.pop("attempt", 1),
        start=0.0,
        entered=entered,
        read=read if read is not None else entered,
        stock_read=stock,
        wrote=wrote,
        released=released,
        end=released or wrote,
        status=201 if code == "created" else 429,
        code=code,
        **kw,
    )


def explain(params, attempts, audit_ok=True):
    summary = analysis.summarize(attempts, stock=params.stock, buyers=params.buyers, elapsed_ms=1)
    text = narrative.explain(
        params, attempts, summary, audit={}, audit_ok=audit_ok, ended_by="done"
    )
    return summary, text


def test_back_to_back_sections_do_not_overlap_but_shared_time_does():
    alone = [attempt(1, 0, 10, 11), attempt(2, 11, 20, 21)]
    assert analysis.overlapping(analysis.sections(alone)) == set()
    shared = [attempt(1, 0, 10, 11), attempt(2, 5, 20, 21), attempt(3, 30, 40, 41)]
    assert analysis.overlapping(analysis.sections(shared)) == {0, 1}
    assert analysis.most_at_once(analysis.sections(shared)) == 2


def test_a_refused_writer_is_not_counted_as_a_holder():
    records = [
        attempt(1, 0, None, 500, code="stale_fence", fence=1, refused=True),
        attempt(2, 150, 170, 171, fence=2),
    ]
    found = analysis.sections(records)
    assert analysis.overlapping(found) == set()
    assert analysis.summarize(records, stock=1, buyers=2, elapsed_ms=1)["fence_refusals"] == 1


def test_stale_readers_read_inside_another_read_write_window():
    records = [
        attempt(1, 0, 50, stock=5),
        attempt(2, 10, 60, stock=5),
        attempt(3, 70, 90, stock=4),
    ]
    assert analysis.stale_readers(records) == [1]
    _, text = explain(RunParameters(strategy="unsafe", stock=2, buyers=3), records)
    assert "1 buyer read the stock while another was between reading and writing" in text
    assert "2 buyers read 5 left and each wrote 4 back" in text
    assert "3 units were sold of 2: 1 that do not exist" in text


def test_naive_lease_lapse_names_who_walked_in_and_whose_lock_the_del_freed():
    params = RunParameters(strategy="naive_lock", stock=5, buyers=3, delay_ms=100, lease_ms=50)
    records = [
        attempt(7, 0, 100, 101),  # lease runs out at 50
        attempt(8, 60, 160, 161),  # walks in after 50; 7's DEL at 101 frees 8's lock
        attempt(9, 120, 220, 221),  # gets in through that
    ]
    _, text = explain(params, records, audit_ok=False)
    assert (
        "Buyer 7's 50 ms lease ran out during its 101 ms in the critical section; buyer 8 "
        "walked in; 7's DEL then freed 8's lock for buyer 9."
    ) in text
    assert "The audit found violations" in text


def test_an_overlap_under_lock_without_a_stall_is_called_a_late_renewal():
    params = RunParameters(strategy="lock", stock=5, buyers=2, delay_ms=100, lease_ms=30)
    records = [attempt(1, 0, 100, 101, stock=5), attempt(2, 60, 160, 161, stock=5)]
    _, text = explain(params, records)
    assert "a 30 ms lease leaves the renewal thread 10 ms per renewal" in text
    assert "lock_fenced would have refused the stale write" in text


def test_serialized_run_reports_its_waits():
    params = RunParameters(strategy="lock", stock=2, buyers=2)
    records = [
        attempt(1, 1, 10, 11, lock_wait_ms=1.0),
        attempt(2, 12, 20, 21, lock_wait_ms=11.0),
    ]
    summary, text = explain(params, records)
    assert summary["lock_wait_ms"]["p50"] == 1.0 and summary["lock_wait_ms"]["max"] == 11.0
    assert "let one buyer in at a time: 2 critical sections, at most 1 at once" in text
    assert "Exactly 2 units sold, no more." in text


def test_group_commit_batches_are_told_by_the_holder_that_decided_them():
    params = RunParameters(strategy="lock", stock=5, buyers=4)
    holder = attempt(1, 0, 10, 11, fence=7, order_fence=7, lock_wait_ms=0.5)
    holder.batch_id, holder.batch_position, holder.batch_size = "900", 1, 3
    riders = []
    for buyer, position in ((3, 2), (2, 3)):
        rider = Attempt(buyer=buyer, attempt=1, start=0.0, end=12.0, status=201, code="created")
        rider.order_fence, rider.batch_id = 7, "900"
        rider.batch_position, rider.batch_size = position, 3
        riders.append(rider)
    later = attempt(4, 12, 20, 21, fence=8, lock_wait_ms=12.0)
    summary, text = explain(params, [holder, *riders, later])
    assert summary["batches"] == [
        {
            "batch_id": "900",
            "size": 3,
            "fence": 7,
            "decided_by": 1,
            "decided_at": 11,
            "buyers": [1, 3, 2],
        }
    ]
    assert summary["timeline"][0]["batch"] == [1, 3, 2] and summary["sections"] == 2
    assert summary["overlapping_sections"] == 0
    assert "decided 3 requests in one go (fence 7), writing the orders of buyers 1, 3, 2" in text
