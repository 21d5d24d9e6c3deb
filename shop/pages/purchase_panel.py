"""The teaching panel: what happened underneath one purchase (lock wait, fence, the order id's
parts), remembered in the session because not all of it is stored on the order."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.contrib.sessions.backends.base import SessionBase

from seckill.ids import parse_order_id
from seckill.models import Order
from seckill.strategies import Placement

log = logging.getLogger(__name__)


SESSION_PLACEMENTS = "seckill_placements"


def remember_placement(session: SessionBase, sale_id: int, placement: Placement) -> None:
    """Keep what the engine reported about the buyer's last purchase in a sale for the panel
    (the lock wait and the fence of the lock held are not all stored on the order)."""
    placements = dict(session.get(SESSION_PLACEMENTS, {}))
    placements[str(sale_id)] = {
        "order_id": str(placement.order.pk),
        "lock_wait_ms": placement.lock_wait_ms,
        "fence": placement.fence,
        "batch_position": placement.order.batch_position,
        "batch_size": placement.order.batch_size,
        "replayed": not placement.created,
        "queued": placement.queued,
    }
    session[SESSION_PLACEMENTS] = placements


def recalled_placement(session: SessionBase, sale_id: int) -> dict | None:
    return session.get(SESSION_PLACEMENTS, {}).get(str(sale_id))


@dataclass(frozen=True)
class PurchaseFacts:
    """What happened underneath one purchase: the lock wait, the fence, the batch it rode in
    (group commit: its position and the batch's size), the order id's parts."""

    order_id: str
    lock_wait_ms: float | None
    fence: int | None
    id_time: datetime | None
    id_worker: int | None
    id_sequence: int | None
    replayed: bool = False
    queued: bool = False
    batch_position: int | None = None
    batch_size: int | None = None


def purchase_facts(
    order_id: int | str,
    lock_wait_ms: float | None = None,
    fence: int | None = None,
    *,
    replayed: bool = False,
    queued: bool = False,
    batch_position: int | None = None,
    batch_size: int | None = None,
) -> PurchaseFacts:
    try:
        parts = parse_order_id(int(order_id))
    except Exception:  # parsing needs the id generator, which may need Redis: the panel is extra
        log.warning("could not parse order id %s for the teaching panel", order_id, exc_info=True)
        parts = None
    return PurchaseFacts(
        str(order_id),
        lock_wait_ms,
        fence,
        parts.datetime if parts else None,
        parts.worker_id if parts else None,
        parts.sequence if parts else None,
        replayed,
        queued,
        batch_position,
        batch_size,
    )


def facts_for_sale(session: SessionBase, sale_id: int) -> PurchaseFacts | None:
    found = recalled_placement(session, sale_id)
    if found is None:
        return None
    return purchase_facts(
        found["order_id"],
        found["lock_wait_ms"],
        found["fence"],
        replayed=found["replayed"],
        queued=found["queued"],
        batch_position=found.get("batch_position"),
        batch_size=found.get("batch_size"),
    )


def facts_for_order(session: SessionBase, order: Order) -> PurchaseFacts:
    """The order's own record, completed by the session's note if this browser placed it."""
    found = recalled_placement(session, order.sale_id) or {}
    if found.get("order_id") != str(order.pk):
        found = {}
    return purchase_facts(
        order.pk,
        order.lock_wait_ms if order.lock_wait_ms is not None else found.get("lock_wait_ms"),
        order.fence if order.fence is not None else found.get("fence"),
        queued=bool(getattr(order, "queued", False)),
        batch_position=order.batch_position,
        batch_size=order.batch_size,
    )
