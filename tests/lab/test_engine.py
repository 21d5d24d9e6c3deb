"""The lab's crowd on real threads, real Redis and the real database: the teaching strategies'
overlap and oversell show up in the records, the safe ones' absence of both."""

from __future__ import annotations

import pytest

from seckill.lab import engine
from seckill.lab.errors import LabBusy
from seckill.lab.models import LabRun, RunStatus
from seckill.lab.params import RunParameters
from seckill.models import Order, Sale

pytestmark = pytest.mark.django_db(transaction=True)

CROWD = {"stock": 4, "buyers": 12, "delay_ms": 40, "time_limit_s": 20}


def run(strategy: str, **changes) -> LabRun:
    return engine.start_run(
        RunParameters(strategy=strategy, **{**CROWD, **changes}), background=False
    )


def test_unsafe_oversells_with_overlapping_sections(redis_client):
    done = run("unsafe")
    s = done.summary
    assert done.status == RunStatus.FINISHED
    assert s["sold"] > s["stock"] and s["oversold"] == s["sold"] - s["stock"]
    assert s["overlapping_sections"] >= 2 and s["most_at_once"] >= 2
    assert s["stale_readers"] >= 1
    assert done.audit_ok is False
    assert {v["code"] for v in done.audit["violations"]} >= {"oversold"}
    assert "read the stock while another was between reading and writing" in s["narrative"]
    # The lab sale and its orders are gone; the run keeps what happened.
    assert not Sale.objects.exists() and not Order.objects.exists()


def test_lock_with_the_same_crowd_holds_exactly_one_at_a_time(redis_client):
    done = run("lock")
    s = done.summary
    assert done.audit_ok is True, done.audit
    assert s["sold"] == s["stock"]
    assert s["overlapping_sections"] == 0 and s["most_at_once"] == 1
    assert s["lock_wait_ms"]["count"] == len(s["timeline"]) == s["sections"]
    assert "let one buyer in at a time" in s["narrative"]


def test_naive_lock_lease_shorter_than_the_pause_lets_a_second_holder_in(redis_client):
    done = run("naive_lock", delay_ms=80, lease_ms=30)
    s = done.summary
    assert s["overlapping_sections"] >= 2
    assert "lease ran out" in s["narrative"] and "walked in" in s["narrative"]


def test_lock_fenced_refuses_the_stalled_holders_write(redis_client):
    done = run("lock_fenced", stock=1, buyers=4, delay_ms=10, lease_ms=150, stall_ms=600)
    s = done.summary
    assert s["fence_refusals"] == 1
    assert s["sold"] == 1 and done.audit_ok is True
    assert "refused its write" in s["narrative"]
    stalled = [bar for bar in s["timeline"] if bar["stalled"]]
    assert stalled and stalled[0]["refused"]


def test_lock_with_a_stalled_holder_oversells(redis_client):
    done = run("lock", stock=1, buyers=4, delay_ms=10, lease_ms=150, stall_ms=600)
    s = done.summary
    assert s["sold"] == 2 and s["fence_refusals"] == 0
    assert s["overlapping_sections"] >= 2
    assert "wrote back the figure it had read before" in s["narrative"]


def test_one_run_at_a_time(redis_client):
    lock = engine.run_lock()
    assert lock.acquire(blocking=False)
    try:
        with pytest.raises(LabBusy):
            run("lock")
    finally:
        lock.release()
    assert not LabRun.objects.exists()


def test_a_run_that_breaks_is_kept_as_failed_and_leaves_nothing_behind(redis_client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("audit exploded")

    monkeypatch.setattr(engine, "audit_sale", broken)
    done = run("unsafe", buyers=3)
    assert done.status == RunStatus.FAILED and done.summary["error"] == "audit exploded"
    assert done.summary["attempts"] == 3  # what the crowd did is still kept
    assert not Sale.objects.exists() and not Order.objects.exists()
    lock = engine.run_lock()
    assert lock.acquire(blocking=False)  # the lab is free again
    lock.release()
