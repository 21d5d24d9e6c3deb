"""The hidden purchase path: a per-buyer, per-sale, single-use token issued only once a sale is
live (strategy-independent; on for sales with ``require_purchase_token``).

Why: bots that fire the order endpoint before the sale opens, or that replay one captured
request from many accounts, get nothing. A buyer must first ask for a token while the sale is
live, and each token buys at most once, within a short TTL.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.utils import timezone

from seckill.errors import NotLive, PurchaseTokenInvalid
from seckill.infrastructure.lua import registered_script
from seckill.infrastructure.redis_client import get_redis
from seckill.keys import sale_keys
from seckill.models import Sale

# A token is held while its purchase runs and spent only if an order comes of it: a refusal the
# buyer may retry (429 busy, 503) must not burn it. KEYS: the buyer's token key. ARGV: token.
HOLD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'held:' .. ARGV[1], 'KEEPTTL')
return 1
"""
GIVE_BACK = """
if redis.call('GET', KEYS[1]) == 'held:' .. ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
"""
SPEND = """
if redis.call('GET', KEYS[1]) == 'held:' .. ARGV[1] then redis.call('DEL', KEYS[1]) end
"""


def token_key(sale_id: int, buyer_id: int) -> str:
    return f"{sale_keys(sale_id).prefix}:ptoken:{buyer_id}"


def issue(sale: Sale, buyer_id: int) -> tuple[str, int]:
    """A fresh token for this buyer and sale (replacing any earlier one); (token, ttl seconds)."""
    if not sale.is_open_at(timezone.now()):
        raise NotLive("purchase tokens are issued only while the sale is live")
    token = secrets.token_urlsafe(16)
    ttl = settings.SECKILL_PURCHASE_TOKEN_TTL
    get_redis().set(token_key(sale.pk, buyer_id), token, ex=ttl)
    return token, ttl


@contextmanager
def spent_on_success(sale: Sale, buyer_id: int, token: str | None) -> Iterator[None]:
    """Hold the buyer's token while the purchase runs (a second request with it is refused, so
    it still buys at most once), spend it if the purchase succeeds, give it back if it raises."""
    if not token or len(token) > 64:
        raise PurchaseTokenInvalid("this sale needs a purchase token: request one first")
    key = token_key(sale.pk, buyer_id)
    if not registered_script(HOLD)(keys=[key], args=[token]):
        raise PurchaseTokenInvalid("the purchase token is invalid, used or expired")
    try:
        yield
    except BaseException:
        registered_script(GIVE_BACK)(keys=[key], args=[token])
        raise
    registered_script(SPEND)(keys=[key], args=[token])
