"""The hidden purchase path: a per-buyer, per-sale, single-use token issued only once a sale is
live (strategy-independent; on for sales with ``require_purchase_token``).

Why: bots that fire the order endpoint before the sale opens, or that replay one captured
request from many accounts, get nothing. A buyer must first ask for a token while the sale is
live, and each token buys at most once, within a short TTL.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.utils import timezone

from seckill.errors import NotLive, PurchaseTokenInvalid
from seckill.infrastructure.lua import registered_script
from seckill.infrastructure.redis_client import get_redis
from seckill.keys import sale_keys
from seckill.models import Sale, SaleStatus

# Compare-and-delete: the token is used up by the request that presents it, and only that one.
CONSUME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def token_key(sale_id: int, buyer_id: int) -> str:
    return f"{sale_keys(sale_id).prefix}:ptoken:{buyer_id}"


def issue(sale: Sale, buyer_id: int) -> tuple[str, int]:
    """A fresh token for this buyer and sale (replacing any earlier one); (token, ttl seconds)."""
    if sale.status_at(timezone.now()) in (SaleStatus.UPCOMING, SaleStatus.ENDED):
        raise NotLive("purchase tokens are issued only while the sale is live")
    token = secrets.token_urlsafe(16)
    ttl = settings.SECKILL_PURCHASE_TOKEN_TTL
    get_redis().set(token_key(sale.pk, buyer_id), token, ex=ttl)
    return token, ttl


def consume(sale: Sale, buyer_id: int, token: str | None) -> None:
    """Use up the buyer's token, or refuse the purchase."""
    if not token or len(token) > 64:
        raise PurchaseTokenInvalid("this sale needs a purchase token: request one first")
    used = registered_script(CONSUME)(keys=[token_key(sale.pk, buyer_id)], args=[token])
    if not used:
        raise PurchaseTokenInvalid("the purchase token is invalid, used or expired")
