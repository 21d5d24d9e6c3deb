"""A lock holder stalled past its lease (SIGSTOP, as a long GC pause or a frozen VM would).

The stalled process has read the stock (1 unit) and holds the item lock; its watchdog is frozen
with it, so the lease runs out. A second buyer takes the lock and sells the unit. Then the first
process resumes and writes. Under ``lock`` nothing stops that write: the unit is sold twice.
Under ``lock_fenced`` the database refuses it, because a newer fence has written since.

With group commit (``SECKILL_LOCK_BATCH`` > 1) the stalled holder is a combiner and its request
sits in the sale's inflight list: under ``lock_fenced`` the second buyer's hold decides it
again first (it gets the unit, the second buyer hears sold out) and the stalled combiner's write
is refused; ``lock`` cannot tell a stalled holder from a dead one and still sells the unit twice.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from django.contrib.auth import get_user_model

from seckill.errors import SoldOut
from seckill.keys import sale_keys
from seckill.models import LIVE_ORDER_STATUSES, Order
from seckill.placement import place_order
from tests.conftest import ROOT, subprocess_env
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = 0.5  # seconds; the stalled holder's critical section lasts longer than this


def wait_for(condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize(("strategy", "units_sold"), [("lock", 2), ("lock_fenced", 1)])
def test_stalled_holder(strategy, units_sold, batch, redis_client, settings):
    settings.SECKILL_LOCK_TTL = LEASE
    settings.SECKILL_LOCK_BATCH = batch
    retried = strategy == "lock_fenced" and batch > 1  # decided again by the second hold
    sale = make_sale(stock=1, strategy=strategy, per_user_limit=1)
    stalled_user, second_user = (
        get_user_model().objects.create_user(name) for name in ("stalled", "second")
    )
    env = subprocess_env(
        SECKILL_LOCK_TTL=str(LEASE),
        SECKILL_CRITICAL_SECTION_DELAY="1.5",
        SECKILL_LOCK_BATCH=str(batch),
    )
    buyers = json.dumps([{"user_id": stalled_user.pk, "key": ""}])
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.crowd", str(sale.pk), "0", buyers],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock_key = sale_keys(sale.pk).lock
        wait_for(lambda: redis_client.exists(lock_key), what="the holder to take the lock")
        time.sleep(0.3)  # it has read the stock and is inside its pause
        holder.send_signal(signal.SIGSTOP)
        wait_for(
            lambda: not redis_client.exists(lock_key),
            timeout=5 * LEASE,
            what="the frozen holder's lease to run out",
        )
        if retried:
            with pytest.raises(SoldOut):
                place_order(sale.pk, second_user, 1)
        else:
            second = place_order(sale.pk, second_user, 1)
            assert second.created
    finally:
        holder.send_signal(signal.SIGCONT)
    out, err = holder.communicate(timeout=60)
    assert holder.returncode == 0, err[-3000:]
    stalled_outcome = json.loads(out.strip().splitlines()[-1])[0]
    sold = Order.objects.filter(sale=sale, status__in=LIVE_ORDER_STATUSES).count()
    assert sold == units_sold
    if retried:
        # Its batch's write was refused; the second hold had decided its request again.
        assert stalled_outcome["code"] == "ok"
        order = Order.objects.get(sale=sale)
        assert order.buyer_id == stalled_user.pk and order.batch_position == 1
        # Decided under the second (last) acquisition's fence, not the stalled holder's.
        assert order.fence == int(redis_client.get(sale_keys(sale.pk).fence))
    elif strategy == "lock_fenced":
        # Its write was refused (stale fence); on retry it found the sale sold out.
        assert stalled_outcome["code"] == "sold_out"
        assert Order.objects.get(sale=sale).fence == second.fence
    else:
        assert stalled_outcome["code"] == "ok"  # the oversell that fencing prevents
