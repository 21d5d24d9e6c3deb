"""Celery tasks of the engine: thin wrappers around the service functions."""

from __future__ import annotations

from celery import shared_task

from seckill import lifecycle, order_queue, reconcile


@shared_task(
    bind=True,
    name=order_queue.DRAIN_TASK,
    acks_late=True,
    ignore_result=True,
    max_retries=None,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=30,
)
def persist_queued(self, sale_id: int) -> int:
    """Write the sale's redis_atomic orders queued in Redis to the database, in batches
    (see seckill.order_queue). Idempotent by order id, so redelivery is harmless; retried with
    backoff while the database is away. Run eagerly (inside the request that accepted the
    order) it does not linger: nothing else can join the batch while that buyer waits."""
    linger = 0.0 if self.request.is_eager else order_queue.DRAIN_LINGER
    return order_queue.drain(sale_id, linger=linger)


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
