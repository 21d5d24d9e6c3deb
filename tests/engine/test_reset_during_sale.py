"""A staff reset while a crowd of real threads buys: never oversold, stock conserved.

Before the reset took the sale row's lock, a db_row_lock order committing between the reset's
DELETE and its absolute stock UPDATE survived it (PostgreSQL: 62/50 and 53/50 sold); redis_atomic
could accept an order between the reset's "nothing queued" check and its mirror rebuild. Each
strategy gets a pause inside its critical section so the reset lands on a held section.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth import get_user_model

from seckill.audit import audit
from seckill.errors import Busy, InvalidState
from seckill.lifecycle import reset_sale
from seckill.models import Order
from tests.engine.crowd import Buyer, run_threads
from tests.engine.factories import make_sale

pytestmark = pytest.mark.django_db(transaction=True)

SAFE = ["lock", "lock_fenced", "redis_atomic", "db_row_lock"]
STOCK, BUYERS, RESETS = 12, 60, 3


def reset_while_buying(
    sale_id: int, done: threading.Event, resets: list[float], grace: float = 3.0
) -> None:
    """Reset ``RESETS`` times while the crowd buys, as soon as orders exist; retry refusals.

    On a loaded machine redis_atomic can keep orders queued (reset refused) for the whole crowd,
    so once the crowd is done the sale (still live) gets ``grace`` seconds for one reset to land.
    """
    deadline = None
    while len(resets) < RESETS:
        if done.is_set():
            deadline = deadline or time.monotonic() + grace
            if resets or time.monotonic() > deadline:
                break
        if not Order.objects.filter(sale_id=sale_id).exists():
            time.sleep(0.005)
            continue
        try:
            reset_sale(sale_id)
            resets.append(time.monotonic())
        except (InvalidState, Busy):  # orders still queued (redis_atomic), lock busy: again
            time.sleep(0.005)
    from django.db import connection

    connection.close()


@pytest.mark.parametrize("strategy", SAFE)
def test_reset_during_a_live_sale_never_oversells(strategy, redis_client, eager_celery, settings):
    settings.SECKILL_CRITICAL_SECTION_DELAY = 0.01
    settings.SECKILL_LOCK_WAIT = 2.0
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"r-{i}") for i in range(BUYERS)
    )
    sale = make_sale(stock=STOCK, strategy=strategy, per_user_limit=1)
    done, resets = threading.Event(), []
    staff = threading.Thread(target=reset_while_buying, args=(sale.pk, done, resets))
    staff.start()
    try:
        run_threads(sale.pk, [Buyer(u.pk, f"k-{u.pk}") for u in users])
    finally:
        done.set()
        staff.join(timeout=30)
    assert resets, "no reset landed during the sale"
    report = audit(sale.pk, settle=0.5)["sales"][0]
    assert report["violations"] == [], report
    assert report["oversold"] == 0 and report["units_sold"] <= STOCK, report
