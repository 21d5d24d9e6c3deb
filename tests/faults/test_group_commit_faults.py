"""Group commit's failure semantics on real processes (issue 16; README fault matrix).

A combiner process takes a batch of waiting buyers (another process, real threads) and is killed
with SIGKILL before or after its COMMIT, or frozen with SIGSTOP past its lease, at a probe point
of its own critical section. Real Redis, the test database (SQLite or PostgreSQL).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from django.contrib.auth import get_user_model

from seckill.keys import sale_keys
from seckill.models import LIVE_ORDER_STATUSES, Order
from seckill.placement import place_order
from tests.conftest import ROOT, subprocess_env
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = 1.0  # seconds
WAITERS = 5
STOCK = 100


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Rig:
    """A sale, a combiner process holding its lock, and a process of queued waiters."""

    def __init__(
        self, strategy: str, stop_at: str, tmp_path, redis_client, stop_for: float = 30
    ) -> None:
        self.redis = redis_client
        self.sale = make_sale(stock=STOCK, strategy=strategy, per_user_limit=1)
        self.keys = sale_keys(self.sale.pk)
        make = get_user_model().objects.create_user
        self.combiner_user = make(f"combiner-{strategy}-{stop_at}")
        self.waiter_users = [make(f"waiter-{strategy}-{stop_at}-{i}") for i in range(WAITERS)]
        self.env = subprocess_env(
            SECKILL_LOCK_TTL=str(LEASE),
            SECKILL_LOCK_WAIT="30",
            SECKILL_LOCK_BATCH="64",
            COMBINER_STOP_FOR=str(stop_for),
        )
        self.go = tmp_path / "go"
        self.lines: queue.Queue[str] = queue.Queue()
        self.combiner = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.combiner", str(self.sale.pk)]
            + [str(self.combiner_user.pk), str(self.go), stop_at],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_lines, daemon=True).start()
        wait_for(
            lambda: redis_client.exists(self.keys.lock),
            timeout=180,
            what="the combiner to take the lock",
        )
        self.fence = int(redis_client.get(self.keys.fence))
        buyers = [{"user_id": u.pk, "key": f"key-{u.pk}"} for u in self.waiter_users]
        self.waiters = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.engine.crowd",
                str(self.sale.pk),
                "0",
                json.dumps(buyers),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(
            lambda: redis_client.llen(self.keys.requests) == WAITERS + 1,
            timeout=180,  # a process of Django and threads, on a busy 2-core machine
            what="the waiters to queue their requests",
        )
        self.go.touch()
        self.expect_line(f"at {stop_at}")

    def _read_lines(self) -> None:
        for line in self.combiner.stdout:
            self.lines.put(line.strip())

    def expect_line(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line.startswith(text):
                return line

    def waiter_codes(self) -> dict[int, str]:
        out, err = self.waiters.communicate(timeout=120)
        assert self.waiters.returncode == 0, err[-3000:]
        return {o["user_id"]: o["code"] for o in json.loads(out.strip().splitlines()[-1])}

    def kill_combiner(self) -> None:
        self.combiner.send_signal(signal.SIGKILL)
        self.combiner.wait(timeout=30)

    def retry_all(self) -> dict[int, tuple[int, bool]]:
        """Every waiter retries with its Idempotency-Key (twice): (order id, created)."""
        seen = {}
        for user in self.waiter_users:
            first = place_order(self.sale.pk, user, 1, f"key-{user.pk}")
            again = place_order(self.sale.pk, user, 1, f"key-{user.pk}")
            assert not again.created and again.order.pk == first.order.pk
            seen[user.pk] = (first.order.pk, first.created)
        return seen

    def assert_books_balance(self) -> None:
        orders = Order.objects.filter(sale=self.sale, status__in=LIVE_ORDER_STATUSES)
        per_buyer = Counter(orders.values_list("buyer_id", flat=True))
        assert all(count == 1 for count in per_buyer.values()), per_buyer
        assert all(per_buyer[u.pk] == 1 for u in self.waiter_users), per_buyer
        self.sale.refresh_from_db()
        assert self.sale.stock_left == STOCK - orders.count()


@pytest.mark.parametrize("strategy", ["lock", "lock_fenced"])
def test_combiner_killed_before_commit(strategy, tmp_path, redis_client, settings):
    settings.SECKILL_LOCK_TTL = LEASE
    rig = Rig(strategy, "read", tmp_path, redis_client)  # batch taken and read, not written
    rig.kill_combiner()
    codes = rig.waiter_codes()  # every waiter answered: none hangs
    assert not Order.objects.filter(sale=rig.sale, fence=rig.fence).exists()
    if strategy == "lock":
        # Nobody can tell whether the dead combiner wrote: 503, retry with the key.
        assert set(codes.values()) == {"unavailable"}, codes
        assert not Order.objects.filter(sale=rig.sale).exists()
    else:
        # The next holder decided the dead combiner's batch again.
        assert set(codes.values()) <= {"ok", "unavailable"}, codes
    rig.retry_all()
    rig.assert_books_balance()


@pytest.mark.parametrize("strategy", ["lock", "lock_fenced"])
def test_combiner_killed_after_commit(strategy, tmp_path, redis_client, settings):
    settings.SECKILL_LOCK_TTL = LEASE
    rig = Rig(strategy, "wrote", tmp_path, redis_client)  # committed, nobody answered yet
    committed = dict(
        Order.objects.filter(sale=rig.sale, fence=rig.fence).values_list("buyer_id", "id")
    )
    assert len(committed) == WAITERS + 1  # the whole batch, the combiner's own order too
    rig.kill_combiner()
    codes = rig.waiter_codes()
    if strategy == "lock":
        assert set(codes.values()) == {"unavailable"}, codes
    else:  # the next holder found the batch's orders by their ids and answered with them
        assert set(codes.values()) == {"ok"}, codes
    retried = rig.retry_all()
    for user in rig.waiter_users:  # every retry returns the committed order: none is lost
        assert retried[user.pk][0] == committed[user.pk]
    assert Order.objects.filter(sale=rig.sale).count() == WAITERS + 1  # none written twice
    rig.assert_books_balance()


def test_lock_fenced_combiner_stalled_past_its_lease(tmp_path, redis_client, settings):
    settings.SECKILL_LOCK_TTL = LEASE
    # It goes on 2 s after the stop (not 30: the answer the next holder leaves it is kept 30 s).
    rig = Rig("lock_fenced", "read", tmp_path, redis_client, stop_for=2)
    rig.combiner.send_signal(signal.SIGSTOP)  # its watchdog freezes with it: the lease runs out
    try:
        # A waiter gets the lock once the lease ends and decides the frozen batch again.
        codes = rig.waiter_codes()
    finally:
        rig.combiner.send_signal(signal.SIGCONT)
    assert set(codes.values()) == {"ok"}, codes
    rig.combiner.wait(timeout=60)
    err = rig.combiner.stderr.read()
    assert rig.combiner.returncode == 0, err[-3000:]
    assert "refused (stale fence)" in err  # its whole batch's write was refused ...
    assert json.loads(rig.expect_line("{"))["code"] == "ok"  # ... and the next holder's answer
    orders = Order.objects.filter(sale=rig.sale)
    assert orders.count() == WAITERS + 1
    assert rig.fence not in set(orders.values_list("fence", flat=True))
    rig.assert_books_balance()
