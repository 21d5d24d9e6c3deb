"""How many units a buyer holds in a sale, and how many more they may buy right now.

For the pages (the quantity box's maximum, the words after a refusal): the engine decides each
purchase on its own figures, under its own serialization; these are a read-only view of them.
"""

from __future__ import annotations

import redis
from django.db.models import Sum

from seckill.infrastructure.redis_client import get_redis
from seckill.keys import sale_keys
from seckill.models import LIVE_ORDER_STATUSES, Order, Sale


def units_held(*, sale_id: int, buyer_id: int) -> int:
    """Units in the buyer's pending and paid orders. A redis_atomic order accepted but not yet
    written is only in the mirror's buyers hash, so the larger of the two figures counts."""
    rows = Order.objects.filter(sale_id=sale_id, buyer_id=buyer_id, status__in=LIVE_ORDER_STATUSES)
    in_db = rows.aggregate(units=Sum("quantity"))["units"] or 0
    try:
        mirrored = get_redis().hget(sale_keys(sale_id).buyers, str(buyer_id))
    except redis.RedisError:  # the page still renders; the engine has the last word anyway
        mirrored = None
    return max(in_db, int(mirrored or 0))


def units_allowed(*, sale: Sale, held: int, stock_left: int) -> int:
    """What one more order may ask for: the buyer's limit left, capped by the stock left."""
    return max(0, min(sale.per_user_limit - held, stock_left))
