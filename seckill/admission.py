"""The order request's admission gate: who is buying, may they, and (where it can) the answer,
in ONE Redis round trip and no database query.

Why: an order request used to pay three round trips (token cache, throttles, sold-out flag) and
a database query (the replay check) before its strategy even started; a flash crowd is mostly
requests that are then turned away. Here one script reads the token's cache entry
(:mod:`seckill.token_cache`), charges both placement throttles (:mod:`seckill.rate_limit`'s
GCRA, all or nothing), and reads the sale's mirror (:mod:`seckill.stock`): the sold-out flag and
the buyer's holding (only a buyer holding units can be replaying a key, so a sold-out answer to
anyone else needs no database), or, for ``redis_atomic``, the whole reservation (replay via the
mirror's Idempotency-Key field, limit, stock, queued record, drain flag). The script is the
existing scripts' own source wrapped as Lua functions, so there is one copy of each rule.

It answers only what it is sure of; anything else returns None and the caller takes the general
path (DRF's authentication, throttles, then :func:`seckill.placement.place_order`), which gives
today's answer: no cache entry or a revocation's tombstone (the database decides, as DRF does),
Redis recently failed or failing now (the token cache and the throttles fall back as before).
Nothing is charged or reserved unless the cached token is valid, so a revoked token is a 401
and costs its old owner nothing. A token not cached yet (signing in caches it) costs this one
wasted round trip on top of DRF's path.

The per-buyer throttle key is the one key the script builds itself (``throttle:order:u<id>``
from the entry's id; the caller cannot know the buyer before the entry is read), so it is not
in KEYS: fine on one Redis, which is the deployment this serves.

Redis Cluster: the token entry, the throttle keys and the ``{sale:N}`` keys live in three
slots, so one script cannot read them all, and the gate splits by slot
(:func:`_admit_on_cluster`): the token entry's GET; then one cluster pipeline of the GCRA
calls, once per slot (:class:`seckill.rate_limit.SlotCharges`, all or nothing by refund), and
the sale's read-only sold-out check (:data:`SOLD_OUT_AND_HELD`); for ``redis_atomic`` the
reservation in a third hop once the throttles allowed (nothing may be reserved for a refused
request). Two round trips there (three for ``redis_atomic``), never a database query, and
none of DRF's authentication and throttle machinery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum

import redis
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Model

from seckill import order_queue, rate_limit, stock, token_cache
from seckill.errors import Unavailable
from seckill.infrastructure.lua import registered_script, run_pipelined
from seckill.infrastructure.redis_client import REDIS_OUTAGES, AppRedis, get_redis, is_cluster
from seckill.keys import sale_keys
from seckill.models import Order, Sale


def _as_function(name: str, source: str) -> str:
    """A script's source as a local Lua function of (KEYS, ARGV): same rules, called inline."""
    return f"local function {name}(KEYS, ARGV)\n{source}\nend\n"


# The sale's half of the sold-out check (Mode.SOLD_OUT_CHECK), on its {sale:N} keys only.
# KEYS: stock, buyers, soldout. ARGV: the buyer. Reply {CHECK_SOLD_OUT's state, the buyer's
# units in the mirror when sold out (only a holder can be replaying a key), else 0}.
SOLD_OUT_AND_HELD = (
    _as_function("check_sold_out", stock.CHECK_SOLD_OUT)
    + """
local state = check_sold_out({KEYS[1], KEYS[3]}, {})
local held = 0
if state == 1 then held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') end
return {state, held}
"""
)

# KEYS: [1] token cache entry, [2] address throttle key, [3..8] the reserve script's sale keys
# (stock, buyers, soldout, idem, queued, drain). ARGV: [1] the user fields, space-separated,
# [2] the per-buyer throttle key prefix, [3] [4] its interval and period in µs, [5] [6] the
# address limit's (0: not limited), [7] mode, [8] Idempotency-Key ('' for none), and for the
# reserve mode [9] quantity, [10] per-buyer limit, [11] order id, [12] the queued record's JSON
# but for its closing '"buyer_id": <id>}', [13] expire_at, [14] drain flag TTL in ms.
# Reply {verdict, token entry, ...}: see Verdict.
GATE = (
    _as_function("gcra", rate_limit.GCRA)
    + _as_function("sold_out_and_held", SOLD_OUT_AND_HELD)
    + _as_function("reserve", stock.RESERVE)
    + """
local entry = redis.call('GET', KEYS[1])
if not entry then return {0} end
local ok, user = pcall(cjson.decode, entry)
if not ok or type(user) ~= 'table' or type(user['id']) ~= 'number' or user['is_active'] ~= true
then return {0} end
local fields = 0
for name in string.gmatch(ARGV[1], '%S+') do
  if user[name] == nil then return {0} end
  fields = fields + 1
end
for _ in pairs(user) do fields = fields - 1 end
if fields ~= 0 then return {0} end
local buyer = string.format('%d', user['id'])
local limits, rates = {}, {}
if tonumber(ARGV[3]) > 0 then
  limits[#limits + 1] = ARGV[2] .. buyer
  rates[#rates + 1], rates[#rates + 2] = ARGV[3], ARGV[4]
end
if tonumber(ARGV[5]) > 0 then
  limits[#limits + 1] = KEYS[2]
  rates[#rates + 1], rates[#rates + 2] = ARGV[5], ARGV[6]
end
if #limits > 0 then
  local allowed = gcra(limits, rates)
  if allowed[1] == 0 then return {1, entry, allowed[2]} end
end
if ARGV[7] == '0' then return {2, entry} end
if ARGV[7] == '1' then
  local checked = sold_out_and_held({KEYS[3], KEYS[4], KEYS[5]}, {buyer})
  return {3, entry, checked[1], checked[2]}
end
local idem_field = ''
if ARGV[8] ~= '' then idem_field = buyer .. ':' .. ARGV[8] end
local reply = reserve({KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]},
  {buyer, ARGV[9], ARGV[10], idem_field, ARGV[11], ARGV[12] .. buyer .. '}', ARGV[13], ARGV[14]})
return {4, entry, unpack(reply)}
"""
)


class Mode(IntEnum):
    """How far the gate goes for this sale (the caller decides from the sale definition)."""

    ADMIT = 0  # token and throttles only: the general path does the rest
    SOLD_OUT_CHECK = 1  # + the sold-out flag and the buyer's holding (lock strategies)
    RESERVE = 2  # + the whole redis_atomic reservation


class Verdict(IntEnum):
    """The gate's first reply."""

    UNKNOWN_TOKEN = 0  # no usable cache entry: nothing was charged, take the general path
    THROTTLED = 1  # reply[2]: µs to wait; nothing was charged
    ADMITTED = 2
    CHECKED = 3  # reply[2]: 1 sold out, 0 stock left, -1 mirror missing; reply[3]: units held
    RESERVED = 4  # reply[2:]: the reserve script's reply


# Sold-out check states (stock.CHECK_SOLD_OUT's answers).
SOLD_OUT, IN_STOCK, MIRROR_MISSING = 1, 0, -1


@dataclass
class Admission:
    """A request the gate let in (or throttled), with what it learned on the way."""

    user: AbstractBaseUser
    token: Model
    wait: float = 0.0  # > 0: throttled, retry after this many seconds
    sold_out_state: int | None = None  # SOLD_OUT_CHECK mode
    held: int = 0  # SOLD_OUT_CHECK mode, when sold out: the buyer's units in the mirror
    reservation: stock.Reservation | None = None  # RESERVE mode


def record_prefix(order: Order) -> str:
    """The queued record of ``order`` (see order_queue.record_of) as JSON without its buyer,
    which the script appends once it knows who the token belongs to."""
    record = order_queue.record_of(order)
    del record["buyer_id"]
    return json.dumps(record)[:-1] + ', "buyer_id": '


def _limit_args(scope: str) -> tuple[int, int]:
    rate = rate_limit.configured_rate(scope)
    return (0, 0) if rate is None else rate_limit.gcra_args(*rate)


def admit(
    *,
    token_model: type[Model],
    token_key: str,
    address: str,
    sale: Sale,
    mode: Mode,
    idempotency_key: str,
    quantity: int = 0,
    order: Order | None = None,
    client: AppRedis | None = None,
) -> Admission | None:
    """Run the gate for an order request with ``Authorization: Token <token_key>``; None when
    the general path must answer (see the module docstring). ``order`` (RESERVE mode): the
    new order, buyer unset; the gate fills in its buyer."""
    if not (token_cache.redis_usable() and rate_limit.redis_usable()):
        return None
    client = client or get_redis()
    buyer_limit, address_limit = _limit_args("order"), _limit_args("order_ip")
    request = _Request(
        token_model,
        token_key,
        sale,
        mode,
        idempotency_key,
        quantity,
        order,
        buyer_limit,
        address_limit,
        # An unlimited scope's key is not even named (it is never touched).
        rate_limit.scoped_key("order", rate_limit.BUYER_IDENT_PREFIX) if buyer_limit[0] else "",
        rate_limit.scoped_key("order_ip", address) if address_limit[0] else "",
    )
    try:
        if is_cluster(client):
            return _admit_on_cluster(client, request)
        return _admit_in_one_script(client, request)
    except REDIS_OUTAGES:
        # The general path falls back as it always has, without waiting for Redis again.
        token_cache.redis_failed()
        rate_limit.redis_failed()
        return None


@dataclass(frozen=True)
class _Request:
    """What the gate is asked, with the placement throttles' settings read once."""

    token_model: type[Model]
    token_key: str
    sale: Sale
    mode: Mode
    idempotency_key: str
    quantity: int
    order: Order | None
    buyer_limit: tuple[int, int]  # (emission interval, period) in µs; (0, 0): not limited
    address_limit: tuple[int, int]
    buyer_key_prefix: str  # + the buyer's id: the per-buyer key; '' when not limited
    address_key: str  # '' when the address scope is not limited


def _admit_in_one_script(client: redis.Redis, request: _Request) -> Admission | None:
    sale, order = request.sale, request.order
    args: list = [
        " ".join(token_cache.USER_FIELDS),
        request.buyer_key_prefix,
        *request.buyer_limit,
        *request.address_limit,
        int(request.mode),
        request.idempotency_key,
    ]
    if request.mode == Mode.RESERVE:
        assert order is not None
        args += [
            request.quantity,
            sale.per_user_limit,
            order.id,
            record_prefix(order),
            stock.expire_at(sale),
            stock.DRAIN_FLAG_TTL_MS,
        ]
    keys = [
        token_cache.cache_key(request.token_key),
        request.address_key,
        *stock.reservation_keys(sale.pk),
    ]
    reply = registered_script(GATE, client)(keys=keys, args=args, client=client)
    return _read(reply, request.token_model, request.token_key, order)


def _admit_on_cluster(client: AppRedis, request: _Request) -> Admission | None:
    """The gate split by slot (module docstring): GET the token entry; then the throttles and
    the sale's sold-out check in one cluster pipeline; for redis_atomic, the reservation."""
    entry = client.get(token_cache.cache_key(request.token_key))
    if entry is None:
        return None  # not cached: the general path decides (and caches it)
    found = token_cache.from_entry(request.token_model, request.token_key, entry)
    if found is None or found[0].is_active is not True or not isinstance(found[0].pk, int):
        return None  # what the one script calls an unusable entry: the general path decides
    admission = Admission(*found)
    buyer = admission.user.pk
    keys, micros = [], []
    for key, limit in (
        (f"{request.buyer_key_prefix}{buyer}", request.buyer_limit),
        (request.address_key, request.address_limit),
    ):
        if limit[0]:  # an unlimited scope is never touched
            keys.append(key)
            micros.append(limit)
    charges = rate_limit.SlotCharges.of(client, keys, micros)
    calls = charges.calls  # a fresh list: the sale's check may join it
    throttle_calls = len(calls)
    if request.mode == Mode.SOLD_OUT_CHECK:
        mirror = sale_keys(request.sale.pk)
        calls.append((SOLD_OUT_AND_HELD, [mirror.stock, mirror.buyers, mirror.soldout], [buyer]))
    answers = run_pipelined(calls, client) if calls else []
    allowed, wait = charges.settle(answers[:throttle_calls], client)
    if not allowed:
        admission.wait = wait
    elif request.mode == Mode.SOLD_OUT_CHECK:
        admission.sold_out_state, admission.held = (int(value) for value in answers[-1])
    elif request.mode == Mode.RESERVE:
        order = request.order
        assert order is not None
        order.buyer_id = buyer
        admission.reservation = stock.reserve(
            request.sale,
            buyer,
            request.quantity,
            request.idempotency_key,
            order.id,
            order_queue.record_of(order),
            client,
        )
    return admission


def _read(reply: list, token_model: type[Model], token_key: str, order: Order | None):
    verdict = Verdict(reply[0])
    if verdict == Verdict.UNKNOWN_TOKEN:
        return None
    found = token_cache.from_entry(token_model, token_key, reply[1])
    if found is None:  # the script and the cache disagree on an entry (never so far)
        if verdict == Verdict.RESERVED:  # too late to let DRF decide: a retry replays the key
            raise Unavailable("the order could not be confirmed; retry with the same key")
        return None
    admission = Admission(*found)
    if verdict == Verdict.THROTTLED:
        admission.wait = int(reply[2]) / 1e6
    elif verdict == Verdict.CHECKED:
        admission.sold_out_state, admission.held = int(reply[2]), int(reply[3])
    elif verdict == Verdict.RESERVED:
        admission.reservation = stock.reservation_of(reply[2:])
        order.buyer_id = admission.user.pk
    return admission
