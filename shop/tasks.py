"""Tasks of the catalog app."""

from celery import shared_task


@shared_task(name="shop.ping")
def ping() -> str:
    """Round-trip probe: proves a worker takes tasks from the broker and answers."""
    return "pong"
