"""Celery tasks of the engine: thin wrappers around the service functions."""

from __future__ import annotations

import logging

from celery import shared_task

from seckill import lifecycle, queue
from seckill.reconcile import reconcile_task  # noqa: F401  (registers seckill.reconcile)

log = logging.getLogger(__name__)


@shared_task(
    name="seckill.persist_order", bind=True, acks_late=True, max_retries=None,
    autoretry_for=(Exception,), retry_backoff=True, retry_backoff_max=30,
)
def persist_order(self, record: dict) -> str:
    """Write a redis_atomic order to the database; idempotent by order id, so redelivery is
    harmless. Retried with backoff while the database is away."""
    order, created = queue.persist(record)
    if created:
        schedule_expiry(order)
    return str(order.pk)


@shared_task(name="seckill.expire_order", acks_late=True)
def expire_order(order_id: int) -> bool:
    """Countdown task scheduled at the order's pay-by time."""
    return lifecycle.expire_order(order_id)


@shared_task(name="seckill.sweep")
def sweep() -> dict:
    """Periodic: expire overdue orders and persist redis_atomic orders whose task was lost."""
    return {
        "expired": lifecycle.expire_due_orders(),
        "persisted": lifecycle.persist_stale_queued(),
    }



def schedule_expiry(order) -> None:
    """Queue the order's expiry at its pay-by time; if the broker is away, the sweep covers it."""
    try:
        expire_order.apply_async((order.pk,), eta=order.pay_by)
    except Exception:
        log.warning("order %s: expiry not scheduled (broker unavailable); the sweep will", order.pk)
