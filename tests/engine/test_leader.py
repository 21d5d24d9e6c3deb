"""Leader election on a real Redis: one leader at a time, takeover after the leader dies."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from seckill.leader import LeaderLease, run_as_leader

ROOT = Path(__file__).resolve().parents[2]
NAME = "test:leader"

# A node that keeps trying to lead and prints "leader <term>" each time it becomes leader.
NODE = """
import sys, time, redis
from seckill.leader import LeaderLease
lease = LeaderLease(redis.Redis.from_url(sys.argv[1]), sys.argv[2], ttl=float(sys.argv[3]),
                    node_id=sys.argv[4])
leading = False
while True:
    now = lease.renew() or lease.try_acquire()
    if now and not leading:
        print("leader", lease.term, flush=True)
    leading = now
    time.sleep(lease.ttl / 5)
"""


def test_only_one_of_two_leads_and_release_hands_over(redis_client) -> None:
    a = LeaderLease(redis_client, NAME, ttl=5, node_id="a")
    b = LeaderLease(redis_client, NAME, ttl=5, node_id="b")
    assert a.try_acquire()
    assert not b.try_acquire()
    assert a.is_leader and not b.is_leader
    assert a.holder() == "a"
    first = a.term
    assert first and a.try_acquire() and a.term == first  # re-acquiring while leading keeps it
    assert not b.release()  # a non-owner cannot delete the lease
    assert a.is_leader and redis_client.exists(a.key)
    assert a.release()
    assert not a.is_leader and a.term is None
    assert b.try_acquire() and b.term > first


def test_former_leader_renew_fails_after_takeover_and_terms_increase(redis_client) -> None:
    a = LeaderLease(redis_client, NAME, ttl=0.2, node_id="a")
    b = LeaderLease(redis_client, NAME, ttl=0.2, node_id="b")
    assert a.try_acquire()
    first = a.term
    time.sleep(0.3)  # a stalls past its lease
    assert not a.is_leader  # it stops trusting the lease without asking Redis
    assert b.try_acquire()
    assert not a.renew()
    assert not a.is_leader and a.term is None
    assert b.term > first
    assert not a.release()  # and it cannot delete b's lease
    assert b.renew() and b.is_leader
    assert b.current_term() == b.term


def test_never_two_leaders_at_once_under_contention(redis_client) -> None:
    """Three threads contend with a short ttl and stall at random; each records when it
    believed it led (from the reply to the deadline). Intervals of different terms must not
    overlap, and terms must follow each other in time."""
    ttl = 0.15
    stop = threading.Event()
    claims: list[tuple[int, float, float]] = []  # (term, believed from, believed until)
    lock = threading.Lock()

    def node(i: int) -> None:
        lease = LeaderLease(redis_client, NAME, ttl=ttl, node_id=f"n{i}")
        step = 0
        while not stop.is_set():
            step += 1
            if lease.renew() or lease.try_acquire():
                with lock:
                    claims.append((lease.term, time.monotonic(), lease.valid_until))
            # Some nodes stall past their lease now and then, forcing takeovers.
            time.sleep(ttl * (1.5 if (step + i) % 7 == 0 else 0.2))

    threads = [threading.Thread(target=node, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()

    spans: dict[int, list[float]] = {}
    for term, start, until in claims:
        span = spans.setdefault(term, [start, until])
        span[0], span[1] = min(span[0], start), max(span[1], until)
    terms = sorted(spans)
    assert len(terms) >= 3, "the stalls should have forced several takeovers"
    for earlier, later in zip(terms, terms[1:], strict=False):
        assert spans[earlier][1] <= spans[later][0], (earlier, later, spans)


def test_run_as_leader_runs_only_on_the_leader_and_renews_during_the_call(redis_client) -> None:
    a = LeaderLease(redis_client, NAME, ttl=0.3, node_id="a")
    b = LeaderLease(redis_client, NAME, ttl=0.3, node_id="b")

    def long_job() -> str:
        time.sleep(1.0)  # > 3 ttls: only the heartbeat keeps the lease
        return "done"

    run = run_as_leader(a, long_job)
    assert run.leader and run.result == "done" and not run.lost
    assert run.term == a.term == a.current_term()
    assert a.is_leader  # sticky: still leading after the call
    assert run_as_leader(b, long_job).leader is False
    assert run_as_leader(a, lambda: 1, step_down=True).result == 1
    assert not redis_client.exists(a.key)


def test_heartbeat_reports_a_lost_lease(redis_client) -> None:
    a = LeaderLease(redis_client, NAME, ttl=0.3, node_id="a")
    assert a.try_acquire()
    with a.heartbeat(interval=0.05) as lost:
        redis_client.delete(a.key)  # e.g. an operator, or a Redis restart
        b = LeaderLease(redis_client, NAME, ttl=5, node_id="b")
        assert b.try_acquire()
        assert lost.wait(2)
    assert not a.is_leader and b.is_leader


class Node:
    """A node process and a reader thread that turns its "leader <term>" lines into a queue."""

    def __init__(self, redis_url: str, node_id: str, ttl: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", NODE, redis_url, NAME, str(ttl), node_id],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.terms: queue.Queue[int] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.terms.put(int(line.split()[1]))

    def next_term(self, timeout: float) -> int | None:
        try:
            return self.terms.get(timeout=timeout)
        except queue.Empty:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.mark.timeout(60)
def test_sigkilled_leader_process_is_replaced_within_ttl(redis_client, redis_url) -> None:
    ttl = 1.0
    first = Node(redis_url, "first", ttl)
    second = None
    try:
        term_first = first.next_term(timeout=15)
        assert term_first is not None, "the first process never led"
        second = Node(redis_url, "second", ttl)
        # The second process keeps trying but must not lead while the first renews.
        assert second.next_term(timeout=2 * ttl) is None
        assert LeaderLease(redis_client, NAME, ttl=ttl).holder() == "first"
        first.kill()  # SIGKILL: no release, no more renewals
        killed_at = time.monotonic()
        term_second = second.next_term(timeout=ttl + 3)
        assert term_second is not None, "the second process did not take over"
        assert time.monotonic() - killed_at < ttl + 3
        assert term_second > term_first
        assert LeaderLease(redis_client, NAME, ttl=ttl).holder() == "second"
    finally:
        for node in (first, second):
            if node is not None:
                node.kill()
