"""The stock service: a sale's stock mirrored in Redis for the hot path; the database is the record.

Why a mirror: the sold-out flag lets a crowd of late buyers be turned away with one Redis round
trip, without taking the item lock or touching the database; and strategy ``redis_atomic``
sells from Redis directly, in one Lua script. The mirror is (re)built from the database whenever
its keys are missing (a new sale, an expired TTL, a restarted Redis) before anything is sold
from it, and repaired by the reconciler if it drifts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum

import redis
from django.db.models import Sum

from seckill.infrastructure.lua import registered_script
from seckill.infrastructure.redis_client import REDIS_OUTAGES, get_redis
from seckill.keys import SaleKeys, sale_keys
from seckill.models import LIVE_ORDER_STATUSES, Order, Sale, Strategy

# Keys outlive the sale by this much, so late payments and the audit still find them.
KEY_GRACE = timedelta(days=1)

# Load the mirror only if it is missing (NX semantics for the whole set of keys). Orders that
# redis_atomic accepted but Celery has not yet written (the queued hash) are not in the database
# figures: they are deducted here, or a rebuilt mirror would sell their units a second time. A
# queued order persisted a moment ago may be counted twice: too little stock, never too much.
# The Idempotency-Key index (redis_atomic's replay check) is rebuilt from the database's keyed
# orders (ARGV after the buyer pairs) and the queued ones, so a retry after a Redis restart still
# gets its first order back. ARGV: stock, expire_at, fence floor, number of buyer pairs, then
# buyer/units pairs, then "<buyer>:<key>"/order id pairs.
LOAD_IF_MISSING = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local stock = tonumber(ARGV[1])
local expire_at = ARGV[2]
local idem_from = 5 + 2 * tonumber(ARGV[4])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[6])
for i = 5, idem_from - 1, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
for i = idem_from, #ARGV, 2 do
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1])
end
local queued = redis.call('HGETALL', KEYS[5])
for i = 1, #queued, 2 do
  local order_id, record = queued[i], cjson.decode(queued[i + 1])
  local buyer = tostring(record['buyer_id'])
  stock = stock - tonumber(record['quantity'])
  redis.call('HINCRBY', KEYS[3], buyer, record['quantity'])
  if record['idempotency_key'] ~= '' then
    redis.call('HSET', KEYS[6], buyer .. ':' .. record['idempotency_key'], order_id)
  end
end
for _, key in ipairs({KEYS[3], KEYS[6]}) do
  if redis.call('EXISTS', key) == 1 then redis.call('EXPIREAT', key, expire_at) end
end
redis.call('SET', KEYS[1], stock)
redis.call('EXPIREAT', KEYS[1], expire_at)
if stock <= 0 then
  redis.call('SET', KEYS[2], 1)
  redis.call('EXPIREAT', KEYS[2], expire_at)
end
-- The fence is written even at 0, so that the lock's INCR finds a key with a TTL (INCR on a
-- missing key would make one that never expires).
local fence = math.max(tonumber(redis.call('GET', KEYS[4]) or '0'), tonumber(ARGV[3]))
redis.call('SET', KEYS[4], fence, 'EXAT', expire_at)
return 1
"""

# 1 = sold out, 0 = stock left, -1 = mirror missing (load it first).
CHECK_SOLD_OUT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
local stock = redis.call('GET', KEYS[1])
if not stock then return -1 end
if tonumber(stock) <= 0 then return 1 end
return 0
"""

# After a committed sale: mirror it. Relative (DECRBY), so mirror writes that land out of order
# (db_row_lock and unsafe write them outside any lock) still add up to the database's figures.
# ARGV: expire-at, then buyer, units pairs (a group-commit batch mirrors all its buyers at once).
MIRROR_SALE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local stock
for i = 2, #ARGV, 2 do
  stock = redis.call('DECRBY', KEYS[1], ARGV[i + 1])
  local bought = redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
  if bought <= 0 then redis.call('HDEL', KEYS[3], ARGV[i]) end
end
redis.call('EXPIREAT', KEYS[3], ARGV[1])  -- the first buyer's HINCRBY made the hash
if stock <= 0 then
  redis.call('SET', KEYS[2], 1)
  redis.call('EXPIREAT', KEYS[2], ARGV[1])
else
  redis.call('DEL', KEYS[2])
end
return 1
"""

# redis_atomic: check idempotency, the per-buyer limit and the stock, then deduct, in one step
# (the limit before the stock, as the lock strategies decide). Returns {status, order_id,
# drain_due, stock_left}: status 1 accepted, 2 replay of an earlier key, 0 sold out, -1 mirror
# missing, -2 limit reached; drain_due 1 when this accepted order found no drain scheduled (the
# flag, KEYS[6], lives ARGV[8] ms unless a drain deletes it first); stock_left, on a refusal for
# want of stock, the units that were left (so the buyer hears "only N left").
RESERVE = """
local stock_key, buyers, soldout, idem, queued = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local buyer, qty, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local idem_field, order_id, record, expire_at = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if idem_field ~= '' then
  local earlier = redis.call('HGET', idem, idem_field)
  if earlier then return {2, earlier} end
end
if redis.call('EXISTS', soldout) == 1 then return {0, ''} end
local stock = redis.call('GET', stock_key)
if not stock then return {-1, ''} end
stock = tonumber(stock)
local bought = tonumber(redis.call('HGET', buyers, buyer) or '0')
if bought + qty > limit then return {-2, ''} end
if stock < qty then
  if stock <= 0 then
    redis.call('SET', soldout, 1)
    redis.call('EXPIREAT', soldout, expire_at)
  end
  return {0, '', 0, math.max(stock, 0)}
end
local left = redis.call('DECRBY', stock_key, qty)
redis.call('HINCRBY', buyers, buyer, qty)
redis.call('EXPIREAT', buyers, expire_at)
if left <= 0 then
  redis.call('SET', soldout, 1)
  redis.call('EXPIREAT', soldout, expire_at)
end
redis.call('HSET', queued, order_id, record)
redis.call('EXPIREAT', queued, expire_at)
if idem_field ~= '' then
  redis.call('HSET', idem, idem_field, order_id)
  redis.call('EXPIREAT', idem, expire_at)
end
local drain_due = 0
if redis.call('SET', KEYS[6], 1, 'NX', 'PX', ARGV[8]) then drain_due = 1 end
return {1, order_id, drain_due}
"""

# Units come back (cancel, expiry): only if the mirror exists; otherwise the next load
# reads the database, which already has them.
RETURN_UNITS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('INCRBY', KEYS[1], ARGV[2])
local bought = redis.call('HINCRBY', KEYS[3], ARGV[1], -tonumber(ARGV[2]))
if bought <= 0 then redis.call('HDEL', KEYS[3], ARGV[1]) end
redis.call('DEL', KEYS[2])
return 1
"""


def expire_at(sale: Sale) -> int:
    return int((sale.ends_at + KEY_GRACE).timestamp())


def units_by_buyer(sale_id: int) -> dict[int, int]:
    """Units in live orders per buyer, from the database."""
    rows = (
        Order.objects.filter(sale_id=sale_id, status__in=LIVE_ORDER_STATUSES)
        .values("buyer_id")
        .annotate(units=Sum("quantity"))
    )
    return {row["buyer_id"]: row["units"] for row in rows}


def idempotency_field(buyer_id: int, idempotency_key: str) -> str:
    """The field of the sale's Idempotency-Key index (``…:idem``) for one buyer's key."""
    return f"{buyer_id}:{idempotency_key}"


def keyed_orders(sale_id: int) -> list[tuple[str, int]]:
    """(index field, order id) of the sale's orders placed with an Idempotency-Key."""
    rows = Order.objects.filter(sale_id=sale_id).exclude(idempotency_key="")
    return [
        (idempotency_field(buyer_id, key), order_id)
        for order_id, buyer_id, key in rows.values_list("id", "buyer_id", "idempotency_key")
    ]


def load_mirror(sale: Sale, client: redis.Redis | None = None) -> bool:
    """Build the Redis mirror from the database if it is missing; True when this call built it."""
    keys = sale_keys(sale.pk)
    fresh = Sale.objects.only("stock_left", "last_fence", "ends_at", "strategy").get(pk=sale.pk)
    buyers = units_by_buyer(sale.pk)
    args: list = [fresh.stock_left, expire_at(fresh), fresh.last_fence, len(buyers)]
    for buyer_id, units in buyers.items():
        args += [buyer_id, units]
    if fresh.strategy == Strategy.REDIS_ATOMIC:  # the only strategy that replays from Redis
        for field, order_id in keyed_orders(sale.pk):
            args += [field, order_id]
    built = registered_script(LOAD_IF_MISSING, client)(
        keys=[keys.stock, keys.soldout, keys.buyers, keys.fence, keys.queued, keys.idempotency],
        args=args,
        client=client,
    )
    return bool(built)


def is_sold_out(sale: Sale, client: redis.Redis | None = None) -> bool:
    """The hot-path short-circuit: one round trip, loading the mirror first if it is missing."""
    keys = sale_keys(sale.pk)
    check = registered_script(CHECK_SOLD_OUT, client)
    answer = check(keys=[keys.stock, keys.soldout], client=client)
    if answer == -1:
        load_mirror(sale, client)
        answer = check(keys=[keys.stock, keys.soldout], client=client)
    return answer == 1


def mark_sold_out(sale: Sale, client: redis.Redis | None = None) -> None:
    client = client or get_redis()
    client.set(sale_keys(sale.pk).soldout, 1, exat=expire_at(sale))


def mirror_sold(sale: Sale, buyer_id: int, units: int, client: redis.Redis | None = None) -> None:
    """Copy a committed sale (``units`` to ``buyer_id``) to the Redis mirror."""
    mirror_sold_many(sale, [(buyer_id, units)], client)


def mirror_sold_many(
    sale: Sale, sold: list[tuple[int, int]], client: redis.Redis | None = None
) -> None:
    """Copy committed sales, (buyer id, units) each, to the Redis mirror in one round trip."""
    if not sold:
        return
    keys = sale_keys(sale.pk)
    registered_script(MIRROR_SALE, client)(
        keys=[keys.stock, keys.soldout, keys.buyers],
        args=[expire_at(sale), *(value for pair in sold for value in pair)],
        client=client,
    )


# How long a scheduled drain may take to start before the next accepted order schedules another
# (its task lost with a broker hiccup, say); the periodic sweep is the backstop after that.
DRAIN_FLAG_TTL_MS = 5000


class ReservationStatus(IntEnum):
    """The reserve script's verdict (its first reply, an integer)."""

    SOLD_OUT = 0
    RESERVED = 1
    REPLAYED = 2  # an earlier order holds this Idempotency-Key
    MISSING = -1  # the mirror is missing: load it, then ask again
    LIMIT = -2  # the buyer's per-sale limit


# The verdicts by their short names, as the strategies read them.
RESERVED, REPLAYED, SOLD_OUT, MISSING, LIMIT = (
    ReservationStatus.RESERVED,
    ReservationStatus.REPLAYED,
    ReservationStatus.SOLD_OUT,
    ReservationStatus.MISSING,
    ReservationStatus.LIMIT,
)


@dataclass(frozen=True)
class Reservation:
    status: ReservationStatus
    order_id: int | None
    drain_due: bool = False  # accepted, and no drain of the queued hash was scheduled yet
    stock_left: int | None = None  # refused for want of stock: the units left (None: sold out)


def reserve(
    sale: Sale,
    buyer_id: int,
    quantity: int,
    idempotency_key: str,
    order_id: int,
    record: dict,
    client: redis.Redis | None = None,
) -> Reservation:
    """redis_atomic: the whole decision in one script; loads the mirror first if needed."""
    idem_field = idempotency_field(buyer_id, idempotency_key) if idempotency_key else ""
    script_keys = reservation_keys(sale.pk)
    args = [
        buyer_id,
        quantity,
        sale.per_user_limit,
        idem_field,
        order_id,
        json.dumps(record),
        expire_at(sale),
        DRAIN_FLAG_TTL_MS,
    ]
    run = registered_script(RESERVE, client)
    reservation = reservation_of(run(keys=script_keys, args=args, client=client))
    if reservation.status == MISSING:
        load_mirror(sale, client)
        reservation = reservation_of(run(keys=script_keys, args=args, client=client))
    return reservation


def reservation_keys(sale_id: int) -> list[str]:
    """The reserve script's KEYS, in its order (the admission gate runs it too)."""
    keys = sale_keys(sale_id)
    return [keys.stock, keys.buyers, keys.soldout, keys.idempotency, keys.queued, keys.drain]


def reservation_of(reply: list) -> Reservation:
    """The reserve script's reply read as a :class:`Reservation`."""
    status, found, *rest = reply
    return Reservation(
        ReservationStatus(status),
        int(found) if found else None,
        drain_due=bool(rest and rest[0]),
        stock_left=int(rest[1]) if len(rest) > 1 else None,
    )


def return_units(sale: Sale, buyer_id: int, units: int, client: redis.Redis | None = None) -> None:
    keys = sale_keys(sale.pk)
    registered_script(RETURN_UNITS, client)(
        keys=[keys.stock, keys.soldout, keys.buyers], args=[buyer_id, units], client=client
    )


def read_mirror(sale_id: int, client: redis.Redis | None = None) -> dict:
    """The mirror as plain values, for the audit, the dashboard and the reconciler."""
    client = client or get_redis()
    keys: SaleKeys = sale_keys(sale_id)
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.stock)
    pipe.exists(keys.soldout)
    pipe.hgetall(keys.buyers)
    pipe.hlen(keys.queued)
    stock, soldout, buyers, queued = pipe.execute()
    return {
        "stock": int(stock) if stock is not None else None,
        "sold_out": bool(soldout),
        "buyers": {int(k): int(v) for k, v in buyers.items()},
        "queued": int(queued),
    }


def mirrored_stock(sale_ids: list[int], client: redis.Redis | None = None) -> dict[int, int]:
    """Redis stock of several sales in one pipeline; sales without a mirror are left out.

    For listings only: if Redis is away the caller falls back to the database figures.
    """
    if not sale_ids:
        return {}
    client = client or get_redis()
    pipe = client.pipeline(transaction=False)
    for sale_id in sale_ids:
        pipe.get(sale_keys(sale_id).stock)
    try:
        values = pipe.execute()
    except REDIS_OUTAGES:
        return {}
    return {sid: int(v) for sid, v in zip(sale_ids, values, strict=True) if v is not None}


# A staff reset closes the mirror to new reservations before it touches the database: stock 0 and
# the sold-out flag, but only if no accepted order is still queued (it would be forgotten, or land
# after the reset and sell from the new stock). KEYS: queued, stock, soldout. ARGV: expire_at.
CLOSE_FOR_RESET = """
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
redis.call('SET', KEYS[2], 0, 'EXAT', ARGV[1])
redis.call('SET', KEYS[3], 1, 'EXAT', ARGV[1])
return 1
"""


def close_for_reset(sale: Sale, client: redis.Redis | None = None) -> bool:
    """Stop every reservation of ``sale`` until the mirror is rebuilt; False (nothing changed)
    while accepted orders are still queued."""
    keys = sale_keys(sale.pk)
    closed = registered_script(CLOSE_FOR_RESET, client)(
        keys=[keys.queued, keys.stock, keys.soldout], args=[expire_at(sale)], client=client
    )
    return bool(closed)


def drop_mirror(sale_id: int, client: redis.Redis | None = None) -> None:
    """Delete a sale's Redis state except the fencing counter, which must never go backwards,
    and the locks (a reset runs while holding one; a drain may be finishing)."""
    client = client or get_redis()
    keys = sale_keys(sale_id)
    kept = (keys.fence, keys.lock, keys.naive_lock, keys.drain_lock)
    client.delete(*[k for k in keys.all() if k not in kept])
