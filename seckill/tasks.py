"""Celery tasks of the engine: thin wrappers around the service functions."""

from __future__ import annotations

from celery import shared_task

from seckill import lifecycle, order_queue, reconcile


@shared_task(
    name=order_queue.DRAIN_TASK,
    acks_late=True,
    ignore_result=True,
    max_retries=None,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=30,
)
def persist_queued(sale_id: int) -> int:
    """Write the sale's redis_atomic orders queued in Redis to the database, in batches
    (see seckill.order_queue). Idempotent by order id, so redelivery is harmless; retried with
    backoff while the database is away."""
    return order_queue.drain(sale_id, linger=order_queue.DRAIN_LINGER)


@shared_task(name="seckill.sweep")
def sweep() -> dict:
    """Periodic: expire overdue orders and persist redis_atomic orders whose drain was lost."""
    return {
        "expired": lifecycle.expire_due_orders(),
        "persisted": order_queue.persist_stale_queued(),
    }


@shared_task(name="seckill.reconcile")
def reconcile_task(sale_id: int | None = None) -> dict:
    """Periodic (beat): only the elected leader reconciles; other nodes return at once."""
    return reconcile.reconcile_as_leader(sale_id)
