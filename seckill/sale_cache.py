"""Sale definitions for order placement, kept in this process for a moment.

Why: every order request needs the sale's window, strategy, per-buyer limit and price, and
reading them is an ORM query per request (about a millisecond of CPU, a tenth of an order's
cost) for data that a flash crowd never changes. The stock never comes from here: every strategy
reads it fresh under its own serialization (lock, row lock, Lua script).

Staleness is bounded: saving or deleting a sale through the ORM drops this process's copy at
once (signals); other processes notice within ``TTL`` seconds. Edit a live sale's strategy or
window with that in mind — or better, not while it is selling.
"""

from __future__ import annotations

import threading
import time

from seckill.errors import NotFound
from seckill.models import Sale

TTL = 1.0  # seconds a definition is reused in one process
MAX_SALES = 1024  # live sales are few; this only bounds a scan over many ids

_cached: dict[int, tuple[float, Sale]] = {}
_guard = threading.Lock()


def sale_definition(sale_id: int) -> Sale:
    """The sale (without its product), from this process' copy when it is fresh; NotFound if
    there is no such sale. Treat it as read-only: it is shared by concurrent requests."""
    now = time.monotonic()
    hit = _cached.get(sale_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    sale = Sale.objects.filter(pk=sale_id).first()
    if sale is None:
        raise NotFound(f"no sale {sale_id}")
    with _guard:
        if len(_cached) >= MAX_SALES:
            _cached.clear()
        _cached[sale_id] = (now + TTL, sale)
    return sale


def forget(sale_id: int) -> None:
    """Drop this process's copy of one sale (a save or delete happened here)."""
    with _guard:
        _cached.pop(int(sale_id), None)


def forget_all() -> None:
    with _guard:
        _cached.clear()


def _sale_changed(sender, instance: Sale, **kwargs) -> None:
    forget(instance.pk)


def connect_signals() -> None:
    """Saving or deleting a sale through the ORM drops its cached definition in this process."""
    from django.db.models.signals import post_delete, post_save

    post_save.connect(_sale_changed, sender=Sale, dispatch_uid="sale_cache_saved")
    post_delete.connect(_sale_changed, sender=Sale, dispatch_uid="sale_cache_deleted")
