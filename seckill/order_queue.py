"""redis_atomic's queue: orders accepted in Redis, written to the database by Celery in batches.

The one owner of a sale's ``…:queued`` hash outside the reserve and load scripts (which add to
it and read it atomically with the stock): reading, counting, finding and forgetting queued
orders, scheduling and running drains, the sweep's backstop, and finding an order that may
still be queued.

An accepted order lives in the sale's ``…:queued`` hash until a *drain* writes it. The reserve
script schedules drains: the first order accepted after a drain has started finds the sale's
``…:drain`` flag missing, sets it, and its request sends one Celery task (``persist_queued``);
orders accepted while the flag stands ride along. So a crowd costs one task and one
transaction per batch — one stock UPDATE and one multi-row INSERT — instead of a broker publish
and a transaction per order, on the request path and in the worker.

Why nothing is left behind: a drain deletes the flag *before* it reads the hash, so any order
accepted after that read found the flag gone and scheduled the next drain. Persisting is
idempotent by order id, so a redelivered task (acks_late, a killed worker) never writes an order
twice, and the periodic sweep drains whatever a lost task left. Drains of one sale take turns
(a lock), so two workers never write the same batch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import redis
from celery import current_app
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from seckill import probes, stock
from seckill.errors import Busy, NotFound
from seckill.ids import parse_order_id
from seckill.infrastructure.redis_client import get_redis
from seckill.keys import sale_keys
from seckill.lock import Lock, LockNotOwnedError
from seckill.models import Order, OrderStatus, Sale, Strategy

log = logging.getLogger(__name__)

DRAIN_BATCH = 500  # orders per transaction
DRAIN_LOCK_TTL = 10.0  # renewed by the watchdog while a drain runs; a dead drain frees it
DRAIN_LOCK_WAIT = 20.0  # a drain waiting longer than this is retried by Celery
# A drain task waits this long before it starts, so the orders accepted meanwhile join its batch
# instead of each asking for a drain of their own while the worker is idle (about 5 batches a
# second per sale at most; an order waits at most this much longer for the database). A drain
# costs the worker about 3 ms of CPU for 65 orders in-process, and Celery's own handling of its
# task about as much again: at 50 ms (20 drains a second) that overhead was most of the worker's
# 0.12 ms of CPU per order under a hot item's load.
DRAIN_LINGER = 0.2
# The Celery task that runs :func:`drain` (seckill.tasks), sent by name: the tasks sit above this
# module and import it, never the other way round.
DRAIN_TASK = "seckill.persist_queued"


def record_of(order: Order) -> dict:
    """The JSON-able form of an unsaved order."""
    return {
        "id": order.id,
        "sale_id": order.sale_id,
        "buyer_id": order.buyer_id,
        "quantity": order.quantity,
        "unit_price": str(order.unit_price),
        "strategy": order.strategy,
        "idempotency_key": order.idempotency_key,
        "pay_by": order.pay_by.isoformat(),
    }


def order_from_record(record: dict) -> Order:
    order = Order(
        id=int(record["id"]),
        sale_id=record["sale_id"],
        buyer_id=record["buyer_id"],
        quantity=record["quantity"],
        unit_price=Decimal(record["unit_price"]),
        strategy=record["strategy"],
        idempotency_key=record["idempotency_key"],
        pay_by=datetime.fromisoformat(record["pay_by"]),
    )
    order.queued = True  # not in the database yet
    return order


def queued_records(sale_id: int, client: redis.Redis | None = None) -> dict[int, dict]:
    """redis_atomic orders accepted in Redis but not yet written to the database."""
    client = client or get_redis()
    raw = client.hgetall(sale_keys(sale_id).queued)
    return {int(k): json.loads(v) for k, v in raw.items()}


def queued_count(sale_id: int, client: redis.Redis | None = None) -> int:
    """How many redis_atomic orders of the sale wait in Redis for the database."""
    return (client or get_redis()).hlen(sale_keys(sale_id).queued)


def find_queued(
    sale_ids: list[int], order_id: int, client: redis.Redis | None = None
) -> dict | None:
    """The queued record of ``order_id`` in any of these sales' queued hashes (one pipeline)."""
    if not sale_ids:
        return None
    pipe = (client or get_redis()).pipeline(transaction=False)
    for sale_id in sale_ids:
        pipe.hget(sale_keys(sale_id).queued, order_id)
    found = next((raw for raw in pipe.execute() if raw is not None), None)
    return None if found is None else json.loads(found)


def forget_queued(sale_id: int, order_ids: list[int], client: redis.Redis | None = None) -> None:
    """Drop persisted orders from the sale's queued hash."""
    if order_ids:
        (client or get_redis()).hdel(sale_keys(sale_id).queued, *order_ids)


def hand_off(order: Order, drain_due: bool) -> None:
    """If this accepted order was the first since the last drain began, ask Celery for the
    next drain of its sale. If the broker is down the order is still safe in Redis: the sweep
    persists it."""
    if not drain_due:
        return
    try:
        current_app.tasks[DRAIN_TASK].delay(order.sale_id)
    except Exception:  # broker trouble must not fail an accepted order
        log.exception("sale %s: could not schedule a drain; the sweep will", order.sale_id)


def _write_one(order: Order) -> tuple[Order, bool]:
    existing = find_persisted(order.id)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            deducted = Sale.objects.filter(pk=order.sale_id, stock_left__gte=order.quantity).update(
                stock_left=F("stock_left") - order.quantity
            )
            if not deducted:
                # Only after Redis lost its data (a restart without persistence) while this
                # order was queued: the mirror, rebuilt from a database that did not have this
                # order yet, sold its units again. Never oversell: record the order, as its
                # 202 promised, but cancelled and holding no units.
                log.error("order %s: no stock left to persist it; recorded as cancelled", order.id)
                order.status = OrderStatus.CANCELLED
            order.save(force_insert=True)
        return order, True
    except IntegrityError:
        # A concurrent write of the same order won; its transaction holds the deduction.
        return Order.objects.get(pk=order.id), False


class _NotWhole(Exception):
    """The batch cannot be written in one go; write its orders one at a time."""


def persist_batch(sale_id: int, records: Iterable[dict]) -> int:
    """Write queued orders of one sale: one stock UPDATE and one INSERT for the lot; the number
    of orders written. Falls back to one at a time (exact, slower) when the sale lacks the stock
    for all of them or one was written meanwhile; a record that fails alone stays queued."""
    orders = [order_from_record(record) for record in records]
    if not orders:
        return 0
    ids = [order.id for order in orders]
    known = set(Order.objects.filter(pk__in=ids).values_list("pk", flat=True))
    fresh = [order for order in orders if order.id not in known]
    done = list(known)
    try:
        with transaction.atomic():
            units = sum(order.quantity for order in fresh)
            if fresh and not Sale.objects.filter(pk=sale_id, stock_left__gte=units).update(
                stock_left=F("stock_left") - units
            ):
                raise _NotWhole()
            Order.objects.bulk_create(fresh)
        written = len(fresh)
        done += [order.id for order in fresh]
    except (IntegrityError, _NotWhole):
        written = 0
        for order in fresh:
            try:
                written += _write_one(order)[1]
            except Exception:  # one bad record must not hold up the others; it stays queued
                log.exception("order %s: could not persist; left queued", order.id)
                continue
            done.append(order.id)
    forget_queued(sale_id, done)
    return written


def drain(sale_id: int, older_than_seconds: float | None = None, linger: float = 0.0) -> int:
    """Persist the sale's queued orders (only those older than ``older_than_seconds``, for the
    sweep) after waiting ``linger`` s for more; the number written. Raises Busy if another
    drain of the sale holds on too long."""
    time.sleep(linger)
    client = get_redis()
    keys = sale_keys(sale_id)
    client.delete(keys.drain)  # from here on, a newly accepted order schedules the next drain
    lock = Lock(client, keys.drain_lock, ttl=DRAIN_LOCK_TTL, watchdog=True)
    if not lock.acquire(blocking=True, timeout=DRAIN_LOCK_WAIT):
        raise Busy("another drain of this sale is still running", retry_after=1)
    try:
        probes.pause("SECKILL_DRAIN_DELAY")  # fault injection: the window a killed worker dies in
        records = list(queued_records(sale_id, client).values())
        if older_than_seconds is not None:
            cutoff = datetime.now().timestamp() - older_than_seconds
            records = [r for r in records if _accepted_at(int(r["id"])) <= cutoff]
        written = 0
        for start in range(0, len(records), DRAIN_BATCH):
            written += persist_batch(sale_id, records[start : start + DRAIN_BATCH])
        return written
    finally:
        try:
            lock.release()
        except LockNotOwnedError:  # the lease ran out: harmless, writes are idempotent by id
            log.warning("sale %s: drain lock lease lost before release", sale_id)


def _accepted_at(order_id: int) -> float:
    """When an order was accepted: its snowflake id's timestamp (s)."""
    return parse_order_id(order_id).timestamp_ms / 1000


def sales_with_keys() -> list[int]:
    """redis_atomic sales whose Redis keys may still exist: every key of a sale expires
    ``KEY_GRACE`` after it ends, so an older sale has nothing queued."""
    recent = Sale.objects.filter(
        strategy=Strategy.REDIS_ATOMIC, ends_at__gt=timezone.now() - stock.KEY_GRACE
    )
    return list(recent.values_list("pk", flat=True))


def persist_stale_queued(older_than_seconds: float = 30.0) -> int:
    """The sweep's half for redis_atomic: persist accepted orders whose drain never ran.

    Runs every few seconds, so its cost follows the live sales only: one indexed query and one
    pipelined HLEN for the sales whose keys may still exist, then a drain of the non-empty ones."""
    sale_ids = sales_with_keys()
    if not sale_ids:
        return 0
    pipe = get_redis().pipeline(transaction=False)
    for sale_id in sale_ids:
        pipe.hlen(sale_keys(sale_id).queued)
    persisted = 0
    for sale_id, waiting in zip(sale_ids, pipe.execute(), strict=True):
        if not waiting:
            continue
        try:
            persisted += drain(sale_id, older_than_seconds=older_than_seconds)
        except Exception:  # one sale's trouble must not hold up the others; it stays queued
            log.exception("sweep: could not drain sale %s", sale_id)
    return persisted


def find_in_sale(sale_id: int, order_id: int) -> Order | None:
    """An order of a known sale: database, else the sale's queued hash, else the database again
    (it may have been persisted between the two looks)."""
    return find_persisted(order_id) or _queued_or_persisted([sale_id], order_id)


def find_order(order_id: int) -> Order:
    """An order by id: from the database, else still queued in Redis (``order.queued``).

    A queued order is looked for in the queued hash of every redis_atomic sale whose Redis keys
    may still exist, in one pipeline: sales are few, and this runs only for an order the
    database does not have (yet), so no per-order index has to be written on the hot path.
    """
    order = find_persisted(order_id)
    if order is None:
        order = _queued_or_persisted(sales_with_keys(), order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


def find_persisted(order_id: int) -> Order | None:
    return Order.objects.filter(pk=order_id).first()


def _queued_or_persisted(sale_ids: list[int], order_id: int) -> Order | None:
    record = find_queued(sale_ids, order_id)
    if record is not None:
        return order_from_record(record)
    return find_persisted(order_id)  # persisted between the two looks
