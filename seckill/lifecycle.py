"""After placement: pay, cancel, expire, and restocking a sale.

Units that come back (cancel, expiry) are returned under the same per-item serialization the
sale's placements use — the item lock, the row lock, or Redis' single thread for redis_atomic —
because the lock strategies write the stock as an absolute value and would otherwise overwrite
a concurrent return. A conditional status update (``WHERE status = 'pending_payment'``) makes
each ending happen at most once, so a late expiry, a double cancel or a redelivered task can
never return the same units twice.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from seckill import stock
from seckill.errors import Busy, InvalidState, NotFound, StaleFence
from seckill.item_locks import placement_lock
from seckill.lock import LockNotOwnedError
from seckill.models import Order, OrderStatus, Sale, Strategy
from seckill.selectors.orders import owned_order

log = logging.getLogger(__name__)

RETURN_LOCK_WAIT = 5.0  # returns are not on the buyer's hot path: wait longer than placements


@contextmanager
def _item_serialized(sale: Sale):
    """Hold the lock the sale's placements hold, if any; yields its fence (or None)."""
    lock = placement_lock(sale)
    if lock is None:
        yield None
        return
    if not lock.acquire(blocking=True, timeout=RETURN_LOCK_WAIT):
        raise Busy("the sale is busy; try again", retry_after=1)
    try:
        yield lock.fence
    finally:
        try:
            lock.release()
        except LockNotOwnedError:
            log.warning("sale %s: lock lease lost while returning units", sale.pk)


def _end(order: Order, new_status: str, *, only_if_due: bool = False) -> bool:
    """Move a pending order to cancelled/expired and return its units; False if it was not
    pending (or, with ``only_if_due``, not yet due)."""
    sale = Sale.objects.get(pk=order.sale_id)
    with _item_serialized(sale) as fence:
        with transaction.atomic():
            if sale.strategy == Strategy.DB_ROW_LOCK:
                Sale.objects.select_for_update().get(pk=sale.pk)
            pending = Order.objects.filter(pk=order.pk, status=OrderStatus.PENDING_PAYMENT)
            if only_if_due:
                pending = pending.filter(pay_by__lte=timezone.now())
            if not pending.update(status=new_status, updated_at=timezone.now()):
                return False
            rows = Sale.objects.filter(pk=sale.pk)
            changes = {"stock_left": F("stock_left") + order.quantity}
            if sale.strategy == Strategy.LOCK_FENCED:
                # Record our fence so a stalled older holder cannot overwrite this return.
                rows, changes["last_fence"] = rows.filter(last_fence__lt=fence), fence
            if not rows.update(**changes):
                raise StaleFence()
        # Still serialized: a placement must not write the mirror between commit and this.
        stock.return_units(sale, order.buyer_id, order.quantity)
    return True


def pay_order(order_id: int, buyer) -> Order:
    """Simulated payment. Paying twice is fine; paying after the window closed is refused."""
    order = owned_order(order_id=order_id, buyer=buyer)
    if getattr(order, "queued", False):
        raise InvalidState("the order is still being recorded; try again in a moment")
    now = timezone.now()
    if order.status == OrderStatus.PENDING_PAYMENT and order.pay_by <= now:
        expire_order(order.pk)
        raise InvalidState("the payment window has closed; the order expired")
    paid = Order.objects.filter(
        pk=order.pk, status=OrderStatus.PENDING_PAYMENT, pay_by__gt=now
    ).update(status=OrderStatus.PAID, paid_at=now, updated_at=now)
    order.refresh_from_db()
    if not paid and order.status != OrderStatus.PAID:
        raise InvalidState(f"a {order.status} order cannot be paid")
    return order


def cancel_order(order_id: int, buyer) -> Order:
    """Cancel an unpaid order and return its units to the sale."""
    order = owned_order(order_id=order_id, buyer=buyer)
    if getattr(order, "queued", False):
        raise InvalidState("the order is still being recorded; try again in a moment")
    if not _end(order, OrderStatus.CANCELLED) and order.status != OrderStatus.CANCELLED:
        order.refresh_from_db()
        if order.status != OrderStatus.CANCELLED:
            raise InvalidState(f"a {order.status} order cannot be cancelled")
    order.refresh_from_db()
    return order


def expire_order(order_id: int) -> bool:
    """Expire an unpaid order whose window closed; True if this call expired it."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return False
    return _end(order, OrderStatus.EXPIRED, only_if_due=True)


def expire_due_orders(limit: int = 500) -> int:
    """The periodic sweep's half for orders: expire what is overdue.

    The only expiry mechanism: a scan of the (status, pay_by) index every
    SECKILL_EXPIRY_SWEEP_INTERVAL seconds costs one indexed query, where a countdown task per
    order would cost a broker publish on every placement and hold thousands of ETA messages in
    the workers' memory through a flash sale."""
    due = Order.objects.filter(
        status=OrderStatus.PENDING_PAYMENT, pay_by__lte=timezone.now()
    ).values_list("pk", flat=True)[:limit]
    return sum(1 for order_id in list(due) if expire_order(order_id))


def reset_sale(sale_id: int, stock_total: int | None = None) -> Sale:
    """Restock a sale for another run: its orders are deleted and its stock refilled.

    For demos and load tests, yet safe during a live sale under every strategy: the reset holds
    what each placement path holds -- the item lock (lock strategies), the sale row's lock
    (db_row_lock, and the queue drain's conditional update) and, in Redis, the mirror closed to
    new reservations (redis_atomic, and every strategy's sold-out short-cut) -- so an order
    either commits before the reset (and is deleted by it) or is sold from the new stock.
    Without the row lock an order committing between the DELETE and the stock UPDATE survived
    and oversold. The fencing counter is kept (fences must never go backwards) and raised to the
    reset's own fence, so a stalled lock_fenced holder cannot write over the new stock.
    Refused while redis_atomic orders are still queued: their tasks would land after the reset.
    """
    sale = Sale.objects.filter(pk=sale_id).first()
    if sale is None:
        raise NotFound(f"no sale {sale_id}")
    with _item_serialized(sale) as fence:
        if not stock.close_for_reset(sale):
            raise InvalidState("orders are still being recorded for this sale; reset once they are")
        try:
            with transaction.atomic():
                sale = Sale.objects.select_for_update().get(pk=sale.pk)
                Order.objects.filter(sale_id=sale.pk).delete()
                if stock_total is not None:
                    sale.stock_total = stock_total
                sale.stock_left = sale.stock_total
                if fence is not None and sale.strategy == Strategy.LOCK_FENCED:
                    sale.last_fence = max(sale.last_fence, fence)
                sale.save(update_fields=["stock_total", "stock_left", "last_fence"])
        finally:  # rebuilt from what the database now says, reset or (if it failed) not
            stock.drop_mirror(sale.pk)
            stock.load_mirror(sale)
    return sale
