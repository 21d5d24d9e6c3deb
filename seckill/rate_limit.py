"""Rate limits in the app's Redis: one Lua round trip per request, one small key per client.
(``seckill.api.throttles`` holds the DRF throttle classes that call it.)

Why not DRF's ``SimpleRateThrottle``: it keeps a pickled list of every request's timestamp in
the window in the cache and rewrites it whole on every request — at flash-sale rates that list
*is* the bottleneck (and two gunicorn workers racing on it lose each other's hits). Here each
(scope, client) pair is one Redis string holding a GCRA "theoretical arrival time": the script
reads it, decides and writes it back atomically, with Redis' own clock (so every web process
agrees) and a TTL of at most one period (so idle clients cost nothing).

GCRA with ``N/period`` lets a fresh client make N requests at once, then one every period/N —
the same budget as DRF's "N per period", without a sliding list. A refused request consumes
nothing, and its ``wait()`` is the exact time until the next one would be allowed, sent as
Retry-After by DRF and the API's exception handler (429, code ``throttled``).

Several limits on one request (order placement: per buyer and per address) are decided by one
script call, not one per limit: on a saturated machine every Redis round trip costs a
scheduling wait besides its CPU. All or nothing: allowed only if every limit allows, and then
every limit is charged; refused, none is, and the wait is the longest among the refusals.

On a Redis Cluster one request's limits hash to different slots (``throttle:order:u5`` and
``throttle:order_ip:10.0.0.7``), and a shared hash tag would have to be the buyer or the address,
merging budgets that must stay apart. So there the script runs once per slot, all in one cluster
pipeline (one round trip per node, in parallel), and all or nothing is kept by compensation:
when any slot refuses, the slots that charged are refunded (their theoretical arrival time goes
back by one emission interval, which is exactly what the charge added) in a second round trip.
In between, a concurrent request of the same client can find the budget spent: at worst it is
refused a moment early, never allowed an extra request.

Redis down — fail open, but not unlimited: the check falls back to the same GCRA in this
process' memory (so a Redis outage neither turns requests into 500s nor removes brute-force
slowing; the limit then holds per process rather than globally), and skips Redis for
``REDIS_RETRY_AFTER`` seconds so each request does not wait for a dead socket first. Order
placement needs Redis anyway and answers 503 ``unavailable`` on its own.

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (env ``SECKILL_THROTTLE_*``), read
on every check, so settings overrides apply.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from redis.crc import key_slot
from rest_framework.throttling import BaseThrottle

from seckill.infrastructure.backoff import RedisBackoff
from seckill.infrastructure.lua import ScriptCall, registered_script, run_pipelined
from seckill.infrastructure.redis_client import REDIS_OUTAGES, AppRedis, get_redis, is_cluster

log = logging.getLogger(__name__)

KEY_PREFIX = "throttle"
REDIS_RETRY_AFTER = 5.0  # seconds to use the in-process limiter after a Redis failure
LOCAL_MAX_KEYS = 10_000  # the in-process fallback forgets the least recently seen clients
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}  # DRF's rate units, by first letter

# KEYS: one per limit, distinct. ARGV: each limit's emission interval and period (µs), in the
# order of KEYS. Returns {allowed (1/0), µs until the request would be allowed (the longest
# wait among the refusing limits)}. Nothing is written unless every limit allows.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local new_tats, wait = {}, 0
for i, key in ipairs(KEYS) do
  local interval, period = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = math.max(tonumber(redis.call('GET', key) or '0'), now)
  new_tats[i] = tat + interval
  wait = math.max(wait, new_tats[i] - period - now)
end
if wait > 0 then return {0, wait} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, new_tats[i], 'PX', math.max(1, math.ceil((new_tats[i] - now) / 1000)))
end
return {1, 0}
"""

# KEYS: limits GCRA just charged. ARGV: each one's emission interval (µs). Takes the charges
# back (a Cluster request refused by a limit in another slot), keeping each key's TTL.
REFUND = """
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if tat then redis.call('SET', key, tat - tonumber(ARGV[i]), 'KEEPTTL') end
end
return 1
"""

# One limit: (key, num_requests, period in seconds).
Limit = tuple[str, int, float]


def gcra_step(tat: float, now: float, interval: float, period: float) -> tuple[bool, float, float]:
    """One GCRA decision in plain Python (the in-process fallback): (allowed, new tat, wait).

    The wait is summed from differences, never as ``(now + interval - period) - now``: with
    float seconds that rounding refused a fresh client's first request under an "N = 1" rate
    about one time in twenty (the Redis script counts in integer microseconds)."""
    start = max(tat, now)
    wait = (start - now) + (interval - period)
    if wait > 0:
        return False, tat, wait
    return True, start + interval, 0.0


class _LocalLimiter:
    """The fallback while Redis is away: the same algorithm and all-or-nothing rule, in this
    process, size-bounded."""

    def __init__(self) -> None:
        self._tats: OrderedDict[str, float] = OrderedDict()
        self._guard = threading.Lock()

    def hit_all(self, limits: Sequence[tuple[str, float, float]]) -> tuple[bool, float]:
        """``limits``: (key, interval, period) each. Same answer as the Redis script."""
        now = time.monotonic()
        with self._guard:
            steps = [
                gcra_step(self._tats.get(key, 0.0), now, interval, period)
                for key, interval, period in limits
            ]
            allowed = all(ok for ok, _, _ in steps)
            for (key, _, _), (_, new_tat, _) in zip(limits, steps, strict=True):
                if allowed:
                    self._tats[key] = new_tat
                if key in self._tats:
                    self._tats.move_to_end(key)  # recently seen, refused or not
            while len(self._tats) > LOCAL_MAX_KEYS:
                self._tats.popitem(last=False)
        return allowed, max(wait for _, _, wait in steps)

    def clear(self) -> None:
        with self._guard:
            self._tats.clear()


_local = _LocalLimiter()
_backoff = RedisBackoff(REDIS_RETRY_AFTER)


def hit_all(limits: Sequence[Limit]) -> tuple[bool, float]:
    """Count one request against every ``(key, num_requests, period)`` limit, in one Redis
    round trip: allowed only if all allow (then all are charged), else none is charged.

    Returns (allowed, seconds to wait when refused: the longest wait among the refusing
    limits). Keys must be distinct.
    """
    if not limits:
        return True, 0.0
    keys = [key for key, _, _ in limits]
    rates = [(period / num_requests, float(period)) for _, num_requests, period in limits]
    if _backoff.available():
        client = get_redis()
        micros = [gcra_args(n, period) for _, n, period in limits]
        try:
            return _hit_in_redis(client, keys, micros)
        except REDIS_OUTAGES as exc:
            _backoff.failed()
            log.warning("throttle: Redis unavailable (%s); limiting in-process", exc)
    return _local.hit_all([(key, *rate) for key, rate in zip(keys, rates, strict=True)])


def _hit_in_redis(
    client: AppRedis, keys: list[str], micros: list[tuple[int, int]]
) -> tuple[bool, float]:
    """The GCRA script once per slot (once on a single Redis), with the refund of the charged
    slots when another refuses: (allowed, seconds to wait)."""
    charges = SlotCharges.of(client, keys, micros)
    if len(charges.calls) == 1:
        _, group_keys, args = charges.calls[0]
        script = registered_script(GCRA, client)
        allowed, wait_us = script(keys=group_keys, args=args, client=client)
        return bool(allowed), int(wait_us) / 1e6
    return charges.settle(run_pipelined(charges.calls, client), client)


@dataclass(frozen=True)
class SlotCharges:
    """One request's limits as one GCRA call per Cluster slot (one call on a single Redis):
    ``calls`` can go out in any pipeline (``seckill.infrastructure.lua.run_pipelined``), and
    :meth:`settle` turns their answers into the all-or-nothing outcome."""

    keys: list[str]
    micros: list[tuple[int, int]]  # (emission interval, period) of each key, µs
    groups: list[list[int]]  # indexes into keys, one list per slot

    @classmethod
    def of(cls, client: AppRedis, keys: list[str], micros: list[tuple[int, int]]) -> SlotCharges:
        if not is_cluster(client):
            return cls(keys, micros, [list(range(len(keys)))])
        by_slot: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            by_slot.setdefault(key_slot(key.encode()), []).append(i)
        return cls(keys, micros, list(by_slot.values()))

    @property
    def calls(self) -> list[ScriptCall]:
        return [
            (GCRA, [self.keys[i] for i in group], [us for i in group for us in self.micros[i]])
            for group in self.groups
        ]

    def settle(self, answers: list, client: AppRedis) -> tuple[bool, float]:
        """(allowed, seconds to wait) from the calls' answers; when some slot refused, the slots
        that charged are refunded first (one more round trip)."""
        if all(allowed for allowed, _ in answers):
            return True, 0.0
        refunds = [
            (REFUND, [self.keys[i] for i in group], [self.micros[i][0] for i in group])
            for group, (allowed, _) in zip(self.groups, answers, strict=True)
            if allowed
        ]
        if refunds:
            run_pipelined(refunds, client)
        return False, max(int(wait_us) for _, wait_us in answers) / 1e6


def gcra_args(num_requests: int, period: float) -> tuple[int, int]:
    """The GCRA script's arguments for one limit: emission interval and period, in µs."""
    return round(period / num_requests * 1e6), round(period * 1e6)


def redis_usable() -> bool:
    """False while this process skips Redis after a failure (the in-process limiter decides)."""
    return _backoff.available()


def redis_failed() -> None:
    """Another caller that counts these limits in Redis (the admission gate) saw it fail."""
    _backoff.failed()


def hit(key: str, num_requests: int, period: float) -> tuple[bool, float]:
    """Count one request against ``num_requests`` per ``period`` seconds for ``key``.

    Returns (allowed, seconds to wait when refused).
    """
    return hit_all([(key, num_requests, period)])


def parse_rate(rate: str) -> tuple[int, int]:
    """DRF's rate syntax, "N/period" (s, sec, m, min, h, hour, d, day): (N, seconds)."""
    num, period = rate.split("/")
    return int(num), PERIODS[period[0]]


def configured_rate(scope: str) -> tuple[int, int] | None:
    """The configured rate of ``scope`` as (N, seconds), or None when it is not limited.

    Read on every call (not frozen at import like DRF's THROTTLE_RATES), so settings
    overrides apply."""
    configured = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
    if scope not in configured:
        raise ImproperlyConfigured(f"No default throttle rate set for {scope!r} scope")
    return None if configured[scope] is None else parse_rate(configured[scope])


def scoped_key(scope: str, who: str) -> str:
    return f"{KEY_PREFIX}:{scope}:{who}"


def hit_scopes(counted: dict[str, str]) -> float:
    """Count one request against each ``scope -> whom`` limit that is configured, in one round
    trip, all or nothing; 0.0 when allowed, else the seconds to wait."""
    limits = [
        (scoped_key(scope, who), *found)
        for scope, who in counted.items()
        if (found := configured_rate(scope)) is not None
    ]
    allowed, wait = hit_all(limits)
    return 0.0 if allowed else wait


def client_address(request: HttpRequest) -> str:
    """The client address the limits count: DRF's rule (``NUM_PROXIES`` trusted entries of
    X-Forwarded-For), so the API and the browser pages count the same client the same way."""
    return BaseThrottle().get_ident(request)


def placement_wait(*, buyer_id: int | None, address: str) -> float:
    """Order placement's limits, in one round trip: per buyer ("order": a bot hammering the buy
    button gains nothing but 429s) and per client address ("order_ip": many accounts behind
    one bot still share it). 0.0 when allowed, else the seconds to wait."""
    return _buyer_and_address("order", "order_ip", buyer_id=buyer_id, address=address)


def purchase_token_wait(*, buyer_id: int | None, address: str) -> float:
    """Purchase-pass requests' own limits, per buyer and per address, in one round trip: the
    pass is the first step of a purchase whose order request is counted against the order
    limits, so counting it there as well would make a token-gated purchase cost two."""
    return _buyer_and_address(
        "purchase_token", "purchase_token_ip", buyer_id=buyer_id, address=address
    )


BUYER_IDENT_PREFIX = "u"  # per-buyer limits count "u<buyer id>"


def buyer_ident(buyer_id: int | None, address: str) -> str:
    """Whom a per-buyer limit counts: the buyer, or (anonymous) the address."""
    return address if buyer_id is None else f"{BUYER_IDENT_PREFIX}{buyer_id}"


def _buyer_and_address(
    buyer_scope: str, address_scope: str, *, buyer_id: int | None, address: str
) -> float:
    """One request against a per-buyer and a per-address limit (an anonymous buyer counts by
    address), in one round trip; 0.0 when allowed, else the seconds to wait."""
    return hit_scopes({buyer_scope: buyer_ident(buyer_id, address), address_scope: address})


def normalised_username(username: str) -> str:
    """A username as sign-in resolves it, whatever its spelling: NFKC (what the user model and
    the browser form store and compare: "ｂｏｂ" is "bob"), trimmed (the API's serializer strips
    " bob", "bob\t" and "\u00a0bob"), caseless. Counting the raw string let each variant start
    a fresh budget for the same account."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


def _sign_in_limits(address: str, username: str | None) -> list[Limit]:
    limit = configured_rate("auth")
    if limit is None:
        return []
    limits = [(scoped_key("auth", address), *limit)]
    name = normalised_username(username) if username else ""
    if name:
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        limits.append((scoped_key("auth", f"user:{digest}"), *limit))
    return limits


def sign_in_wait(*, address: str, username: str | None) -> float:
    """Count one sign-in (or registration) attempt from ``address`` for ``username`` against
    the ``auth`` rate, per address and per normalised username, in one round trip and all or
    nothing (a refusal by either budget charges neither): slows password guessing from one
    address, and guessing one account's password from many. 0.0 when allowed (or unlimited),
    else the seconds to wait. The API's token and register endpoints, the browser login and
    the admin login share it; an invalid API token is counted as an attempt of its address."""
    allowed, wait = hit_all(_sign_in_limits(address, username))
    return 0.0 if allowed else wait


class _RecentRefusals:
    """Addresses this process saw refused a sign-in, until when: lets the token check refuse a
    guessing address before it costs a database query, without a Redis round trip for anyone
    else (each process learns from its own first refusal)."""

    def __init__(self) -> None:
        self._until: OrderedDict[str, float] = OrderedDict()
        self._guard = threading.Lock()

    def note(self, address: str, wait: float) -> None:
        with self._guard:
            self._until[address] = time.monotonic() + wait
            self._until.move_to_end(address)
            while len(self._until) > LOCAL_MAX_KEYS:
                self._until.popitem(last=False)

    def remaining(self, address: str) -> float:
        with self._guard:
            return max(0.0, self._until.get(address, 0.0) - time.monotonic())

    def clear(self) -> None:
        with self._guard:
            self._until.clear()


_refused = _RecentRefusals()


def bad_token_wait(*, address: str) -> float:
    """Count an invalid API token as a sign-in attempt of ``address``; the seconds to wait
    when its budget is spent (0.0: not yet)."""
    wait = sign_in_wait(address=address, username=None)
    if wait:
        _refused.note(address, wait)
    return wait


def bad_token_block(*, address: str) -> float:
    """Seconds this process still refuses ``address``'s unknown tokens (see bad_token_wait)."""
    return _refused.remaining(address)


def reset_local_fallback() -> None:
    """Forget the in-process fallback's state and retry Redis at once (tests)."""
    _backoff.reset()
    _local.clear()
    _refused.clear()
