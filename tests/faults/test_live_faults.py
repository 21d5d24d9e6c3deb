"""Faults in real processes during a live sale (see loadtest.faults for each scenario's steps).

Each test starts its own gunicorn + Celery worker stack on a private redis-server, injects
the fault, and asserts the scenario's checks plus a clean ``manage.py seckill_audit`` run in a
separate process. The stalled lock holder (SIGSTOP past the lease; ``lock`` oversells,
``lock_fenced`` refuses) is tests/engine/test_fencing.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from loadtest import faults
from tests.conftest import ROOT
from tests.faults.conftest import assert_result

pytestmark = [pytest.mark.timeout(300)]


def test_gunicorn_worker_sigkilled_while_holding_the_item_lock(live_db, tmp_path):
    """Fault: the gunicorn worker serving a buyer is SIGKILLed inside the critical section,
    holding the item lock. Expect: the lease frees by TTL (no one releases it), the others
    continue, the victim's retry with its Idempotency-Key is served once, exactly the stock
    is sold, audit clean."""
    assert_result(faults.gunicorn_worker_killed(live_db, tmp_path))


def test_redis_restarted_mid_sale(live_db, tmp_path):
    """Fault: redis-server (no persistence) stopped and started again mid-sale, then again once
    sold out. Expect: 503 at once while it is down; the mirror (stock, buyer set, sold-out flag)
    rebuilt from the database before anything is sold; earlier buyers refused by their limit;
    exactly the stock sold; audit clean."""
    assert_result(faults.redis_restart(live_db, tmp_path, strategy="lock_fenced"))


def test_redis_unreachable_for_seconds(live_db, tmp_path):
    """Fault: redis-server frozen with SIGSTOP for 4 s while a crowd buys (sockets hang rather
    than refuse). Expect: every request answered within the socket timeouts (503 while frozen),
    none hung; the crowd then sells out exactly; audit clean."""
    assert_result(faults.redis_unreachable(live_db, tmp_path))


def test_celery_worker_sigkilled_while_persisting(live_db, tmp_path):
    """Fault: the Celery worker persisting redis_atomic orders is SIGKILLed part-way. Expect:
    its unacknowledged tasks are redelivered to a replacement worker, persisting is idempotent
    by order id, every 202 ends as exactly one order, stock deducted once each; audit clean."""
    assert_result(faults.celery_worker_killed(live_db, tmp_path, buyers=20, stock=20))


def test_reconciler_leader_sigkilled(live_db, tmp_path):
    """Fault: the process leading the reconciler is SIGKILLed. Expect: another node leads
    within the lease, terms never overlap in time (never two leaders), and the new leader
    repairs drift injected after the takeover; audit clean."""
    assert_result(faults.leader_killed(live_db, tmp_path, rounds=1))


def test_fault_runner_cli_small_form(tmp_path):
    """``python -m loadtest.faults`` (the slow, full-size runner) in its small form, on its own
    SQLite database: it exits 0 and prints the fault table."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.faults",
            "--small",
            "--only",
            "leader_killed",
            "--work",
            str(tmp_path),
            "--database-url",
            f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert "| leader_killed | reconciler leader process SIGKILLed | PASS |" in done.stdout


def test_redis_restarted_while_a_holder_is_in_the_critical_section(live_db, tmp_path):
    """Fault: Redis SIGKILLed and restarted while a buyer holds the item lock between reading
    and writing the stock; a second buyer then takes a fresh lock. Expect: under ``lock`` the
    audit finds the lost update (what the plain lock allows); under ``lock_fenced`` one write
    is refused by its fence, the buyer retries, and the sale is conserved: audit clean."""
    assert_result(faults.redis_restart_mid_critical_section(live_db, tmp_path))
