"""The six ways to place an order, one function each (see design.md's strategy table).

Four of them run the same *read-modify-write* critical section — read the stock and what the
buyer already holds, decide, write the new stock and the order — and differ only in what, if
anything, serializes it: nothing (``unsafe``), the tutorial lock (``naive_lock``), the safe lock
(``lock``) or the safe lock plus a fencing token checked by the database write (``lock_fenced``).
That sameness is the lesson: the lock is the only thing between the crowd and an oversell.
``db_row_lock`` lets the database serialize, and ``redis_atomic`` decides everything in one Lua
script and leaves the database write to Celery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, router, transaction
from django.db.models import Sum
from django.utils import timezone

from seckill import group_commit, order_queue, probes, stock
from seckill.errors import Busy, LimitReached, SeckillError, SoldOut, StaleFence, Unavailable
from seckill.ids import next_order_id
from seckill.item_locks import item_lock, naive_item_lock
from seckill.lock import LockNotOwnedError
from seckill.models import LIVE_ORDER_STATUSES, Order, Sale, Strategy

log = logging.getLogger(__name__)

SALE_TABLE, ORDER_TABLE = Sale._meta.db_table, Order._meta.db_table


@dataclass
class Placement:
    """What a placement attempt produced (the API and pages render it)."""

    order: Order
    created: bool  # False: an earlier order returned for a replayed Idempotency-Key
    queued: bool = False  # redis_atomic: accepted in Redis, written to the database by Celery
    lock_wait_ms: float | None = None
    fence: int | None = None


def critical_section_pause() -> None:
    """Fault injection: widen the race window between reading and writing the stock."""
    probes.pause("SECKILL_CRITICAL_SECTION_DELAY")


def find_replay(sale: Sale, buyer_id: int, idempotency_key: str) -> Order | None:
    """The buyer's earlier order in this sale for this Idempotency-Key, if any.

    Asked on most keyed requests and nearly always answered "none", so the question is plain
    SQL on the (sale, buyer, key) unique index; only a replay loads the order through the ORM.
    """
    if not idempotency_key:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {ORDER_TABLE}"
            " WHERE sale_id = %s AND buyer_id = %s AND idempotency_key = %s",
            [sale.pk, buyer_id, idempotency_key],
        )
        row = cursor.fetchone()
    return None if row is None else Order.objects.get(pk=row[0])


def replayed(sale: Sale, buyer_id: int, idempotency_key: str) -> Placement | None:
    """The answer to a replayed Idempotency-Key (the earlier order), or None."""
    earlier = find_replay(sale, buyer_id, idempotency_key)
    return None if earlier is None else Placement(earlier, created=False)


def turn_away_if_sold_out(sale: Sale, buyer_id: int, key: str) -> Placement | None:
    """The sold-out short-circuit (one Redis round trip). A retry of a request whose order took
    the last units gets that order back, not 409."""
    if not stock.is_sold_out(sale):
        return None
    return sold_out_answer(sale, buyer_id, key)


def sold_out_answer(sale: Sale, buyer_id: int, key: str, *, held: int | None = None) -> Placement:
    """The answer of a sold-out sale: 409, or the earlier order of a replayed key. Only a buyer
    the mirror shows holding units (``held``, when the caller read it) can be replaying, so only
    then is the database asked: the crowd that arrives too late costs no query."""
    replay = replayed(sale, buyer_id, key) if held is None or held > 0 else None
    if replay is None:
        raise SoldOut()
    return replay


def units_held(sale_id: int, buyer_id: int) -> int:
    held = Order.objects.filter(
        sale_id=sale_id, buyer_id=buyer_id, status__in=LIVE_ORDER_STATUSES
    ).aggregate(units=Sum("quantity"))["units"]
    return held or 0


def stock_and_holding(sale_id: int, buyer_id: int) -> tuple[int, int]:
    """The sale's stock and the units the buyer already holds, in one query.

    Inside the item lock every round trip, and every millisecond of Python, is paid once per
    buyer by the whole crowd: this is plain SQL because the ORM spends longer compiling the
    equivalent subquery than the database spends answering it.
    """
    live = ", ".join(["%s"] * len(LIVE_ORDER_STATUSES))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.stock_left, COALESCE((SELECT SUM(o.quantity) FROM {ORDER_TABLE} o"
            f" WHERE o.sale_id = s.id AND o.buyer_id = %s AND o.status IN ({live})), 0)"
            f" FROM {SALE_TABLE} s WHERE s.id = %s",
            [buyer_id, *(status.value for status in LIVE_ORDER_STATUSES), sale_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise Sale.DoesNotExist(f"no sale {sale_id}")
    return int(row[0]), int(row[1])


def refusal(sale: Sale, stock_left: int, held: int, quantity: int) -> SeckillError | None:
    """Why this buyer may not buy ``quantity`` now (the per-buyer limit first), or None."""
    if held + quantity > sale.per_user_limit:
        return LimitReached(f"you may buy at most {sale.per_user_limit} of this sale")
    if stock_left < quantity:
        return SoldOut.with_stock(stock_left)
    return None


def check_can_buy(sale: Sale, stock_left: int, held: int, quantity: int) -> None:
    refused = refusal(sale, stock_left, held, quantity)
    if refused is not None:
        if stock_left <= 0 and isinstance(refused, SoldOut):
            stock.mark_sold_out(sale)
        raise refused


def pay_by() -> timezone.datetime:
    return timezone.now() + timedelta(seconds=settings.SECKILL_PAYMENT_WINDOW)


def new_order(
    sale: Sale,
    buyer_id: int,
    quantity: int,
    idempotency_key: str,
    *,
    order_id: int | None = None,
    **extra,
) -> Order:
    return Order(
        id=next_order_id() if order_id is None else order_id,
        sale_id=sale.pk,
        buyer_id=buyer_id,
        quantity=quantity,
        unit_price=sale.price,
        strategy=sale.strategy,
        idempotency_key=idempotency_key,
        pay_by=pay_by(),
        **extra,
    )


def read_modify_write(
    sale: Sale,
    buyer_id: int,
    quantity: int,
    idempotency_key: str,
    *,
    fence: int | None = None,
    check_fence: bool = True,
    lock_wait_ms: float | None = None,
) -> Order:
    """The critical section: read (outside any transaction), decide, pause, write.

    Deliberately the pattern of the blog posts: the stock is read, then written back as an
    absolute value. Two callers that overlap both read the same figure and both sell from it.
    The order records ``fence`` (the lock held); with ``check_fence`` the write only lands if no
    newer lock holder has written (lock_fenced), without it the fence is only recorded (lock).
    """
    stock_left, held = stock_and_holding(sale.pk, buyer_id)
    probes.point("read", stock_left=stock_left)
    check_can_buy(sale, stock_left, held, quantity)
    critical_section_pause()
    new_left = stock_left - quantity
    order = new_order(
        sale, buyer_id, quantity, idempotency_key, fence=fence, lock_wait_ms=lock_wait_ms
    )
    with transaction.atomic():
        rows = Sale.objects.filter(pk=sale.pk)
        if fence is None or not check_fence:
            rows.update(stock_left=new_left)
        elif not rows.filter(last_fence__lt=fence).update(stock_left=new_left, last_fence=fence):
            raise StaleFence()
        order.save(force_insert=True)
    probes.point("wrote")
    stock.mirror_sold(sale, buyer_id, quantity)
    return order


def batch_reads(
    sale_id: int, requests: list[group_commit.Request]
) -> tuple[int, dict[int, int], dict[tuple[int, str], int], set[int]]:
    """The stock, and the batch's buyers' orders in this sale, in one query: the units each
    holds live, their orders' ids by Idempotency-Key, and every one of their order ids."""
    buyers = sorted({r.buyer for r in requests})
    marks = ", ".join(["%s"] * len(buyers))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.stock_left, o.id, o.buyer_id, o.quantity, o.status, o.idempotency_key"
            f" FROM {SALE_TABLE} s LEFT JOIN {ORDER_TABLE} o"
            f" ON o.sale_id = s.id AND o.buyer_id IN ({marks}) WHERE s.id = %s",
            [*buyers, sale_id],
        )
        rows = cursor.fetchall()
    if not rows:
        raise Sale.DoesNotExist(f"no sale {sale_id}")
    live = {status.value for status in LIVE_ORDER_STATUSES}
    held: dict[int, int] = {}
    keyed: dict[tuple[int, str], int] = {}
    ids: set[int] = set()
    for _, order_id, buyer_id, quantity, status, key in rows:
        if order_id is None:
            continue
        ids.add(order_id)
        if status in live:
            held[buyer_id] = held.get(buyer_id, 0) + quantity
        if key:
            keyed[(buyer_id, key)] = order_id
    return int(rows[0][0]), held, keyed, ids


def claim_fence(sale: Sale, fence: int) -> None:
    """lock_fenced, taking over an unanswered batch: write our fence first, so the holder that
    took it (if it only stalled) can no longer commit it, and one that did commit is seen."""
    if not Sale.objects.filter(pk=sale.pk, last_fence__lt=fence).update(last_fence=fence):
        raise StaleFence()


def read_modify_write_batch(
    sale: Sale, batch: group_commit.Batch, *, check_fence: bool
) -> list[group_commit.Outcome]:
    """The critical section for a batch of buyers: one read, each decided in order, one write.

    The same read-modify-write as :func:`read_modify_write` (the stock is written back as an
    absolute value), done once for the whole queue: one read of the stock and of the buyers'
    holdings and keys, one stock UPDATE and one multi-row INSERT in one transaction. Two
    requests of one buyer count together against the limit; a second one with the same
    Idempotency-Key is a replay of the first. A request taken over from a holder that committed
    it already (its id is an order's) is answered with that order.
    """
    Outcome = group_commit.Outcome
    fence_still_ours = {"last_fence__lt": batch.fence}
    if check_fence and batch.recovered:
        claim_fence(sale, batch.fence)
        fence_still_ours = {"last_fence": batch.fence}
    stock_left, held, keyed, placed = batch_reads(sale.pk, batch.requests)
    probes.point("read", stock_left=stock_left)
    left, size = stock_left, len(batch.requests)
    orders: list[Order] = []
    outcomes: list[group_commit.Outcome] = []
    first_of_key: dict[tuple[int, str], group_commit.Outcome] = {}
    for position, request in enumerate(batch.requests, start=1):
        replay_of = (request.buyer, request.key)
        if request.id in placed:
            outcome = Outcome(order_id=request.id, created=True)
        elif request.key and replay_of in keyed:
            outcome = Outcome(order_id=keyed[replay_of], created=False)
        elif request.key and replay_of in first_of_key:  # the same key earlier in this batch
            first = first_of_key[replay_of]
            outcome = first if first.error else Outcome(order_id=first.order_id, created=False)
        else:
            refused = refusal(sale, left, held.get(request.buyer, 0), request.quantity)
            if refused is not None:
                outcome = Outcome(error=refused)
            else:
                order = new_order(
                    sale,
                    request.buyer,
                    request.quantity,
                    request.key,
                    order_id=request.id,
                    fence=batch.fence,
                    lock_wait_ms=batch.lock_wait_ms,
                    batch_position=position,
                    batch_size=size,
                )
                orders.append(order)
                left -= request.quantity
                held[request.buyer] = held.get(request.buyer, 0) + request.quantity
                outcome = Outcome(order_id=order.id, created=True, order=order)
            if request.key:
                first_of_key[replay_of] = outcome
        outcomes.append(outcome)
    critical_section_pause()
    if orders:
        with transaction.atomic():
            rows = Sale.objects.filter(pk=sale.pk)
            if not check_fence:
                rows.update(stock_left=left)
            # A holder that took a batch over has claimed the sale with its fence already: it
            # writes only if that claim still stands. Otherwise the fence must be newer than
            # every write's (not equal: after a Redis wipe two holders can get the same one).
            elif not rows.filter(**fence_still_ours).update(
                stock_left=left, last_fence=batch.fence
            ):
                raise StaleFence()
            Order.objects.bulk_create(orders)
        probes.point("wrote")
    stock.mirror_sold_many(sale, [(order.buyer_id, order.quantity) for order in orders])
    if left <= 0 and any(isinstance(o.error, SoldOut) for o in outcomes):
        stock.mark_sold_out(sale)
    return [
        replace(o, record=order_columns(o.order)) if o.order is not None else o for o in outcomes
    ]


def order_columns(order: Order) -> dict:
    """A committed order's columns, JSON-able, for its waiter's answer (group commit): reading
    the order back instead cost a query per buyer, a fifth of a lock order's web CPU."""
    values = {}
    for column in Order._meta.concrete_fields:
        value = column.value_from_object(order)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        values[column.attname] = value
    return values


def order_from_columns(values: dict) -> Order:
    """The order :func:`order_columns` describes, as the database holds it."""
    fields = Order._meta.concrete_fields
    return Order.from_db(
        router.db_for_read(Order),
        [f.attname for f in fields],
        [f.to_python(values[f.attname]) for f in fields],
    )


def place_unsafe(sale: Sale, buyer: AbstractBaseUser, quantity: int, key: str) -> Placement:
    """No lock at all: correct alone, oversells under a crowd. Teaching only."""
    if stock.is_sold_out(sale):
        raise SoldOut()
    return Placement(read_modify_write(sale, buyer.pk, quantity, key), created=True)


def _place_holding(
    lock, sale: Sale, buyer: AbstractBaseUser, quantity: int, key: str, *, fenced: bool
) -> Placement:
    """Run the critical section while holding ``lock``, waiting at most SECKILL_LOCK_WAIT."""
    started = time.perf_counter()
    if not lock.acquire(blocking=True, timeout=settings.SECKILL_LOCK_WAIT):
        raise Busy(retry_after=1)
    waited_ms = (time.perf_counter() - started) * 1000
    probes.point("entered", fence=lock.fence, lock_wait_ms=waited_ms)
    try:
        earlier = find_replay(sale, buyer.pk, key)
        if earlier is not None:
            # One story everywhere: a replay reports the fence its order was placed under.
            return Placement(earlier, created=False, lock_wait_ms=waited_ms, fence=earlier.fence)
        order = read_modify_write(
            sale,
            buyer.pk,
            quantity,
            key,
            fence=lock.fence,
            check_fence=fenced,
            lock_wait_ms=waited_ms,
        )
    finally:
        probes.point("released")  # before: the release hands the lock to the next waiter
        try:
            lock.release()
        except LockNotOwnedError:
            # The lease ran out inside the critical section: another holder may have overlapped.
            # lock_fenced refused our write if so; plain lock could not tell.
            log.warning("sale %s: item lock lease lost before release", sale.pk)
    return Placement(order, created=True, lock_wait_ms=waited_ms, fence=order.fence)


def place_naive_lock(sale: Sale, buyer: AbstractBaseUser, quantity: int, key: str) -> Placement:
    """SETNX + EXPIRE + DEL: safe until a holder outlives its lease. Teaching only."""
    return _place_holding(naive_item_lock(sale.pk), sale, buyer, quantity, key, fenced=False)


def _place_combined(
    sale: Sale, buyer: AbstractBaseUser, quantity: int, key: str, *, fenced: bool
) -> Placement:
    """Group commit: queue the request; the lock's holder decides the whole queue at once
    (``seckill.group_commit``). ``SECKILL_LOCK_BATCH=1``: one order per lock hold instead."""
    batch_size = int(probes.setting("SECKILL_LOCK_BATCH", 1))
    if batch_size <= 1:
        return _place_holding(item_lock(sale.pk), sale, buyer, quantity, key, fenced=fenced)
    request = group_commit.Request(next_order_id(), buyer.pk, quantity, key)
    outcome, waited_ms = group_commit.place(
        item_lock(sale.pk),
        sale.pk,
        request,
        batch_size=batch_size,
        recover=fenced,
        decide=lambda batch: read_modify_write_batch(sale, batch, check_fence=fenced),
    )
    if outcome.error is not None:
        raise outcome.error
    try:
        order = outcome.order or (
            order_from_columns(outcome.record)
            if outcome.record is not None
            else Order.objects.get(pk=outcome.order_id)
        )
    except Order.DoesNotExist:
        # Decided, then deleted by a staff reset before this buyer could read it back.
        log.warning("sale %s: order %s gone before its buyer read it", sale.pk, outcome.order_id)
        raise Unavailable("the sale was reset while your order was placed; retry") from None
    return Placement(
        order, created=outcome.created, lock_wait_ms=order.lock_wait_ms, fence=order.fence
    )


def place_lock(sale: Sale, buyer: AbstractBaseUser, quantity: int, key: str) -> Placement:
    """The default: token lock, safe release, watchdog renewal while the holder lives; its
    holder decides every queued order at once (group commit)."""
    return _place_combined(sale, buyer, quantity, key, fenced=False)


def place_lock_fenced(sale: Sale, buyer: AbstractBaseUser, quantity: int, key: str) -> Placement:
    """The lock plus a fencing token: a holder that stalled past its lease cannot write."""
    return _place_combined(sale, buyer, quantity, key, fenced=True)


def place_db_row_lock(sale: Sale, buyer: AbstractBaseUser, quantity: int, key: str) -> Placement:
    """SELECT … FOR UPDATE on the sale row: the database serializes buyers (and is the limit)."""
    with transaction.atomic():
        locked = Sale.objects.select_for_update().get(pk=sale.pk)
        probes.point("entered")
        replay = replayed(sale, buyer.pk, key)
        if replay is not None:
            return replay
        probes.point("read", stock_left=locked.stock_left)
        check_can_buy(locked, locked.stock_left, units_held(sale.pk, buyer.pk), quantity)
        critical_section_pause()
        locked.stock_left -= quantity
        locked.save(update_fields=["stock_left"])
        order = new_order(sale, buyer.pk, quantity, key)
        order.save(force_insert=True)
    probes.point("wrote")
    stock.mirror_sold(sale, buyer.pk, quantity)
    return Placement(order, created=True)


def place_redis_atomic(sale: Sale, buyer: AbstractBaseUser, quantity: int, key: str) -> Placement:
    """One Lua script decides and deducts; Celery writes the order to the database later, in
    batches (seckill.order_queue)."""
    order = new_order(sale, buyer.pk, quantity, key)
    return settle_reservation(sale, order, reserve_order(sale, order))


def reserve_order(sale: Sale, order: Order) -> stock.Reservation:
    """The reserve script for an unsaved order (loading the mirror first if it is missing)."""
    return stock.reserve(
        sale,
        order.buyer_id,
        order.quantity,
        order.idempotency_key,
        order.id,
        order_queue.record_of(order),
    )


def settle_reservation(sale: Sale, order: Order, reservation: stock.Reservation) -> Placement:
    """redis_atomic's answer to the reserve script's verdict on ``order``: hand an accepted
    order to Celery, or the earlier order of a replayed key, or the refusal."""
    if reservation.status == stock.MISSING:  # the admission gate found no mirror: build it
        reservation = reserve_order(sale, order)
    if reservation.status == stock.REPLAYED:
        earlier = order_queue.find_in_sale(sale.pk, reservation.order_id)
        if earlier is None:
            raise Unavailable("the first order for this Idempotency-Key was lost; retry later")
        return Placement(earlier, created=False, queued=getattr(earlier, "queued", False))
    if reservation.status == stock.SOLD_OUT:
        raise SoldOut.with_stock(reservation.stock_left)
    if reservation.status == stock.LIMIT:
        raise LimitReached(f"you may buy at most {sale.per_user_limit} of this sale")
    order_queue.hand_off(order, reservation.drain_due)
    order.queued = True  # answered 202: the database write is Celery's
    return Placement(order, created=True, queued=True)


# Strategies that look for a replayed Idempotency-Key themselves (under their serialization and
# on their sold-out path; redis_atomic in its script); asking the database first is redundant.
CHECK_REPLAYS_INSIDE = frozenset(
    {
        Strategy.NAIVE_LOCK,
        Strategy.LOCK,
        Strategy.LOCK_FENCED,
        Strategy.DB_ROW_LOCK,
        Strategy.REDIS_ATOMIC,
    }
)

# Strategies whose buyers are turned away on the sold-out flag (turn_away_if_sold_out) before
# they queue for the lock or the row: the caller does it (seckill.placement), unless it has just
# read the flag itself (the admission gate).
SOLD_OUT_FIRST = frozenset(
    {Strategy.NAIVE_LOCK, Strategy.LOCK, Strategy.LOCK_FENCED, Strategy.DB_ROW_LOCK}
)

STRATEGIES: dict[str, Callable[[Sale, AbstractBaseUser, int, str], Placement]] = {
    Strategy.UNSAFE: place_unsafe,
    Strategy.NAIVE_LOCK: place_naive_lock,
    Strategy.LOCK: place_lock,
    Strategy.LOCK_FENCED: place_lock_fenced,
    Strategy.DB_ROW_LOCK: place_db_row_lock,
    Strategy.REDIS_ATOMIC: place_redis_atomic,
}
