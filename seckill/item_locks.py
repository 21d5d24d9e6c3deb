"""The per-item locks of a sale (built from settings on the lock library, seckill.lock)."""

from __future__ import annotations

from seckill import probes
from seckill.infrastructure.redis_client import get_redis
from seckill.keys import sale_keys
from seckill.lock import Lock, NaiveLock
from seckill.models import Sale, Strategy


def item_lock(sale_id: int, *, watchdog: bool = True) -> Lock:
    """The safe lock: token-owned, fenced, renewed by a watchdog while the holder lives."""
    return Lock(
        get_redis(),
        sale_keys(sale_id).lock,
        ttl=probes.setting("SECKILL_LOCK_TTL"),
        # The lab's stalled holder renews nothing, as a frozen process would not.
        watchdog=watchdog and probes.setting("SECKILL_LOCK_WATCHDOG", True),
    )


def naive_item_lock(sale_id: int) -> NaiveLock:
    """The tutorial lock (SETNX, EXPIRE, DEL) that strategy naive_lock uses to show its failure."""
    return NaiveLock(
        get_redis(), sale_keys(sale_id).naive_lock, ttl=probes.setting("SECKILL_NAIVE_LOCK_TTL")
    )


# The lock each strategy's placements hold. None: unsafe holds nothing; db_row_lock and
# redis_atomic serialize in the database and in Redis. Whatever changes a sale's stock outside a
# placement (returns, reconciliation, reset) takes the same one, teaching locks included.
PLACEMENT_LOCKS = {
    Strategy.NAIVE_LOCK: naive_item_lock,
    Strategy.LOCK: item_lock,
    Strategy.LOCK_FENCED: item_lock,
}


def placement_lock(sale: Sale) -> Lock | NaiveLock | None:
    make_lock = PLACEMENT_LOCKS.get(sale.strategy)
    return None if make_lock is None else make_lock(sale.pk)
