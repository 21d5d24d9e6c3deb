"""The reconciler: find where a sale's Redis mirror drifted from the database, and repair it.

Drift happens: a Redis restart or eviction, a crash between a database commit and its mirror
write, an operator's hand edit. The database is the record, so the mirror is recomputed from it:

    expected stock        = stock_left - units of queued orders not yet in the database
    expected buyers[b]    = b's units in live orders + b's queued, unpersisted units

(queued orders exist only for redis_atomic: Redis has already deducted them, the database not).

Why it is safe to run against a live sale:

- Each check runs under the sale's serialization: the item lock for the lock strategies (the
  one their placements and returns hold), and a database transaction that locks the sale row
  (PostgreSQL) or takes SQLite's write lock (IMMEDIATE transactions), so no placement, persist
  or return commits while the figures are compared.
- Redis is read before the order rows, so an order persisted meanwhile is seen as both queued
  and persisted and counted once.
- The repair is one compare-and-set Lua script: it writes only if the stock, the queued set and
  every buyer entry it changes are exactly as observed, so a reservation that lands in between
  is never overwritten; the sale is simply checked again on the next run.
- A database change whose Redis half is still in flight looks like drift for a moment, so drift
  is repaired only if a second look, ``settle`` seconds later, sees exactly the same state.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from seckill import stock
from seckill.infrastructure.lua import registered_script
from seckill.infrastructure.redis_client import get_redis
from seckill.item_locks import placement_lock
from seckill.keys import sale_keys
from seckill.leader import LeaderLease, run_as_leader
from seckill.lock import LockNotOwnedError, LockUnavailableError
from seckill.models import Order, Sale

log = logging.getLogger(__name__)

LEADER_NAME = "seckill:reconciler:leader"
RECENT = timedelta(hours=1)  # ended sales are still checked this long (late cancels, expiries)
LOCK_WAIT = 2.0  # the reconciler waits longer than a buyer, but gives up rather than queue
SETTLE = 0.2  # seconds between the two looks at a drifting sale

# KEYS: stock, soldout, buyers, queued.
# ARGV: observed stock, new stock, expire_at, observed queued count, n, n queued ids,
#       then triples (buyer, observed value or '', new value or '' to delete).
# 1 = repaired; 0 = something changed since it was observed: nothing written.
REPAIR = """
local stock_key, soldout, buyers, queued = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('GET', stock_key) ~= ARGV[1] then return 0 end
if redis.call('HLEN', queued) ~= tonumber(ARGV[4]) then return 0 end
local n = tonumber(ARGV[5])
for i = 6, 5 + n do
  if redis.call('HEXISTS', queued, ARGV[i]) == 0 then return 0 end
end
local first = 6 + n
for i = first, #ARGV, 3 do
  if (redis.call('HGET', buyers, ARGV[i]) or '') ~= ARGV[i + 1] then return 0 end
end
redis.call('SET', stock_key, ARGV[2], 'KEEPTTL')
for i = first, #ARGV, 3 do
  if ARGV[i + 2] == '' then
    redis.call('HDEL', buyers, ARGV[i])
  else
    redis.call('HSET', buyers, ARGV[i], ARGV[i + 2])
  end
end
if redis.call('EXISTS', buyers) == 1 then redis.call('EXPIREAT', buyers, ARGV[3]) end
if tonumber(ARGV[2]) <= 0 then
  redis.call('SET', soldout, 1)
  redis.call('EXPIREAT', soldout, ARGV[3])
else
  redis.call('DEL', soldout)
end
return 1
"""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _as_int(raw: str | None) -> int | str | None:
    """A mirror value as an int, or the raw text when it is not one (itself drift)."""
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


@dataclass(frozen=True)
class Observation:
    """One consistent look at a sale: its Redis mirror (raw) and the database figures."""

    redis_stock: str | None
    sold_out: bool
    redis_buyers: dict[str, str]
    queued: dict[int, tuple[int, int]]  # order id -> (buyer id, units)
    stock_left: int
    db_buyers: dict[int, int]
    persisted: frozenset[int]  # queued ids already written (their HDEL is still to come)

    @property
    def unpersisted(self) -> dict[int, tuple[int, int]]:
        return {oid: bq for oid, bq in self.queued.items() if oid not in self.persisted}

    @property
    def queued_units(self) -> int:
        return sum(units for _, units in self.unpersisted.values())

    @property
    def expected_stock(self) -> int:
        return self.stock_left - self.queued_units

    @property
    def expected_buyers(self) -> dict[str, str]:
        units = Counter(self.db_buyers)
        for buyer, qty in self.unpersisted.values():
            units[buyer] += qty
        return {str(b): str(u) for b, u in units.items() if u > 0}

    @property
    def stock_value(self) -> int | str | None:
        """Redis stock as an int (the raw text if it is not one; None if missing)."""
        return _as_int(self.redis_stock)

    @property
    def mirror_missing(self) -> bool:
        return self.redis_stock is None

    def drift(self) -> dict:
        """What differs from what the database implies (empty: in step)."""
        if self.mirror_missing:
            return {"mirror": "missing"}
        found: dict[str, Any] = {}
        expected = self.expected_stock
        if self.stock_value != expected:
            found["stock"] = {"redis": self.stock_value, "expected": expected}
        buyers = self.buyer_changes()
        if buyers:
            found["buyers"] = {
                b: {"redis": _as_int(old or None), "expected": _as_int(new or None)}
                for b, (old, new) in buyers.items()
            }
        if self.sold_out and expected > 0:
            found["sold_out"] = {"redis": True, "expected": False}
        return found

    def buyer_changes(self) -> dict[str, tuple[str, str]]:
        """buyer -> (value in Redis, value it should have), '' meaning absent."""
        want = self.expected_buyers
        return {
            b: (self.redis_buyers.get(b, ""), want.get(b, ""))
            for b in sorted(set(want) | set(self.redis_buyers))
            if self.redis_buyers.get(b) != want.get(b)
        }


def observe(sale: Sale, client: redis.Redis) -> Observation:
    """Read the mirror, then the database; call inside the transaction that locks the sale.

    Redis first: a redis_atomic order persisted between the two reads is then both still
    queued and already in the database, and ``persisted`` makes it count once.
    """
    keys = sale_keys(sale.pk)
    pipe = client.pipeline(transaction=True)
    pipe.get(keys.stock)
    pipe.exists(keys.soldout)
    pipe.hgetall(keys.buyers)
    pipe.hgetall(keys.queued)
    raw_stock, soldout, raw_buyers, raw_queued = pipe.execute()
    queued: dict[int, tuple[int, int]] = {}
    for order_id, raw in raw_queued.items():
        record = json.loads(raw)
        queued[int(order_id)] = (int(record["buyer_id"]), int(record["quantity"]))
    stock_left = Sale.objects.values_list("stock_left", flat=True).get(pk=sale.pk)
    persisted = Order.objects.filter(sale_id=sale.pk, pk__in=list(queued)).values_list(
        "pk", flat=True
    )
    return Observation(
        redis_stock=_text(raw_stock),
        sold_out=bool(soldout),
        redis_buyers={_text(k): _text(v) for k, v in raw_buyers.items()},
        queued=queued,
        stock_left=stock_left,
        db_buyers=stock.units_by_buyer(sale.pk),
        persisted=frozenset(persisted),
    )


@dataclass
class SaleReconcile:
    """One sale's outcome. ``outcome``: ok, repaired, loaded (mirror was missing), settled
    (drift gone on the second look), unstable (state moved between looks), conflict (a
    concurrent change beat the compare-and-set), busy (lock not free), skipped, error (Redis
    unreachable: the run stopped there)."""

    sale_id: int
    strategy: str
    outcome: str
    drift: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)


@dataclass
class ReconcileReport:
    sales: list[SaleReconcile] = field(default_factory=list)

    @property
    def drifted(self) -> list[int]:
        return [s.sale_id for s in self.sales if s.drift and s.outcome != "error"]

    @property
    def fixed(self) -> list[int]:
        return [s.sale_id for s in self.sales if s.fixed]

    def as_dict(self) -> dict:
        """JSON-able; sales that were in step are only counted (a beat result every interval)."""
        return {
            "checked": len(self.sales),
            "drifted": self.drifted,
            "fixed": self.fixed,
            "sales": [asdict(s) for s in self.sales if s.outcome != "ok"],
        }


@contextmanager
def serialized(sale: Sale) -> Iterator[bool]:
    """The sale's own serialization (see module docstring); yields False if the item lock was
    not free within LOCK_WAIT. The transaction is always the innermost layer."""
    lock = placement_lock(sale)
    if lock is not None and not lock.acquire(blocking=True, timeout=LOCK_WAIT):
        yield False
        return
    try:
        with transaction.atomic():
            if connection.features.has_select_for_update:
                list(Sale.objects.select_for_update().filter(pk=sale.pk).values_list("pk"))
            yield True
    finally:
        if lock is not None:
            try:
                lock.release()
            except LockNotOwnedError:  # lease lost mid-check: the compare-and-set still held
                log.warning("sale %s: item lock lease lost during reconcile", sale.pk)


def load_missing_mirror(sale: Sale, seen: Observation, client: redis.Redis) -> bool:
    """Rebuild an absent mirror (queued redis_atomic units deducted by the load script)."""
    return stock.load_mirror(sale, client)


def repair(sale: Sale, seen: Observation, client: redis.Redis) -> bool:
    """Compare-and-set the mirror to what ``seen`` implies; False if Redis moved meanwhile."""
    keys = sale_keys(sale.pk)
    args: list = [
        seen.redis_stock,
        seen.expected_stock,
        stock.expire_at(sale),
        len(seen.queued),
        len(seen.queued),
        *seen.queued,
    ]
    for buyer, (old, new) in seen.buyer_changes().items():
        args += [buyer, old, new]
    done = registered_script(REPAIR, client)(
        keys=[keys.stock, keys.soldout, keys.buyers, keys.queued], args=args, client=client
    )
    return bool(done)


def reconcile_sale(
    sale: Sale,
    client: redis.Redis | None = None,
    *,
    settle: float = SETTLE,
    now: datetime | None = None,
) -> SaleReconcile:
    """Check one sale and repair its mirror if it drifted (see the module docstring)."""
    client = client or get_redis()
    now = now or timezone.now()
    result = SaleReconcile(sale.pk, sale.strategy, "ok")
    with transaction.atomic():
        first = observe(sale, client)
    result.drift = first.drift()
    if not result.drift:
        return result
    if first.mirror_missing and now >= sale.ends_at:
        result.outcome = "skipped"  # an ended sale needs no mirror to sell from
        return result
    if not first.mirror_missing and settle > 0:
        time.sleep(settle)
    with serialized(sale) as held:
        if not held:
            result.outcome = "busy"
            return result
        second = observe(sale, client)
        if first.mirror_missing and second.mirror_missing:
            if load_missing_mirror(sale, second, client):
                result.outcome = "loaded"
                result.fixed = {"mirror": "loaded", "stock": second.expected_stock}
            else:
                result.outcome = "conflict"
        elif not second.drift():
            result.outcome = "settled"
        elif second != first:
            result.outcome = "unstable"
        elif repair(sale, second, client):
            result.outcome = "repaired"
            result.fixed = result.drift
        else:
            result.outcome = "conflict"
    if result.outcome == "loaded":  # routine: a new sale, an expired or restarted Redis
        log.info("sale %s: mirror loaded from the database: %s", sale.pk, result.fixed)
    elif result.fixed:  # drift: something wrote Redis behind the engine's back
        log.warning("sale %s: mirror repaired: %s", sale.pk, result.fixed)
    return result


def sales_to_check(now: datetime, recent: timedelta = RECENT) -> QuerySet[Sale]:
    """Live sales and those that ended within ``recent``: the ones whose mirror matters."""
    return Sale.objects.filter(starts_at__lte=now, ends_at__gte=now - recent).order_by("pk")


def reconcile(
    sale_id: int | None = None,
    *,
    client: redis.Redis | None = None,
    settle: float = SETTLE,
    recent: timedelta = RECENT,
    keep_going: Callable[[], bool] = lambda: True,
) -> ReconcileReport:
    """Reconcile one sale, or every live and recently ended one.

    ``keep_going`` is asked before each sale: the leader passes ``lease.is_leader`` so a node
    that lost its lease mid-run stops acting.
    """
    now = timezone.now()
    sales = Sale.objects.filter(pk=sale_id) if sale_id is not None else sales_to_check(now, recent)
    report = ReconcileReport()
    for sale in sales:
        if not keep_going():
            log.warning("reconcile stopped before sale %s: no longer leader", sale.pk)
            break
        try:
            report.sales.append(reconcile_sale(sale, client, settle=settle, now=now))
        except (redis.RedisError, LockUnavailableError) as exc:
            # Redis is away: every other sale would wait out the same timeouts. Next run.
            log.warning("reconcile stopped at sale %s: %s", sale.pk, exc)
            report.sales.append(
                SaleReconcile(sale.pk, sale.strategy, "error", drift={"error": str(exc)})
            )
            break
    return report


_lease: LeaderLease | None = None
_lease_pid: int | None = None


def leader_lease() -> LeaderLease:
    """This process's lease on reconciler leadership; a forked child makes its own, so two
    processes never share a token."""
    global _lease, _lease_pid
    if _lease is None or _lease_pid != os.getpid():
        ttl = 3 * float(settings.SECKILL_RECONCILE_INTERVAL)
        _lease, _lease_pid = LeaderLease(get_redis(), LEADER_NAME, ttl=ttl), os.getpid()
    return _lease


def reconcile_as_leader(sale_id: int | None = None) -> dict:
    """Reconcile only if this node is (or now becomes) the leader, stopping between sales once
    it no longer is; other nodes return at once, naming the leader. JSON-able (a task result)."""
    lease = leader_lease()
    run = run_as_leader(lease, reconcile, sale_id, keep_going=lambda: lease.is_leader)
    if not run.leader:
        return {"leader": False, "holder": lease.holder()}
    return {"leader": True, "term": run.term, "lost": run.lost, **run.result.as_dict()}
