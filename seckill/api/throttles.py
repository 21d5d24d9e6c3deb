"""Rate limits in the app's Redis: one Lua round trip per check, one small key per client.

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

Redis down — fail open, but not unlimited: the check falls back to the same GCRA in this
process' memory (so a Redis outage neither turns requests into 500s nor removes brute-force
slowing; the limit then holds per process rather than globally), and skips Redis for
``REDIS_RETRY_AFTER`` seconds so each request does not wait for a dead socket first. Order
placement needs Redis anyway and answers 503 ``unavailable`` on its own.

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (env ``SECKILL_THROTTLE_*``), read
when the throttle is built, so settings overrides apply.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict

import redis
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from shop.redis_client import get_redis, registered_script

log = logging.getLogger(__name__)

KEY_PREFIX = "throttle"
REDIS_RETRY_AFTER = 5.0  # seconds to use the in-process limiter after a Redis failure
LOCAL_MAX_KEYS = 10_000  # the in-process fallback forgets the least recently seen clients

# KEYS[1]: the client's key. ARGV: emission interval (µs), period (µs).
# Returns {allowed (1/0), µs until the next request would be allowed}.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then return {0, allow_at - now} end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, 0}
"""


def gcra_step(tat: float, now: float, interval: float, period: float) -> tuple[bool, float, float]:
    """One GCRA decision in plain Python (the in-process fallback): (allowed, new tat, wait)."""
    new_tat = max(tat, now) + interval
    allow_at = new_tat - period
    if now < allow_at:
        return False, tat, allow_at - now
    return True, new_tat, 0.0


class _LocalLimiter:
    """The fallback while Redis is away: the same algorithm, in this process, size-bounded."""

    def __init__(self) -> None:
        self._tats: OrderedDict[str, float] = OrderedDict()
        self._guard = threading.Lock()

    def hit(self, key: str, interval: float, period: float) -> tuple[bool, float]:
        now = time.monotonic()
        with self._guard:
            allowed, tat, wait = gcra_step(self._tats.get(key, 0.0), now, interval, period)
            self._tats[key] = tat
            self._tats.move_to_end(key)
            while len(self._tats) > LOCAL_MAX_KEYS:
                self._tats.popitem(last=False)
        return allowed, wait

    def clear(self) -> None:
        with self._guard:
            self._tats.clear()


_local = _LocalLimiter()
_redis_down_until = 0.0
def hit(key: str, num_requests: int, period: float) -> tuple[bool, float]:
    """Count one request against ``num_requests`` per ``period`` seconds for ``key``.

    Returns (allowed, seconds to wait when refused). Usable outside DRF, e.g. by a browser
    login view: ``hit(f"throttle:login:{ip}", 30, 60)``.
    """
    global _redis_down_until
    interval, period_f = period / num_requests, float(period)
    if time.monotonic() >= _redis_down_until:
        client = get_redis()
        try:
            allowed, wait_us = registered_script(GCRA, client)(
                keys=[key], args=[round(interval * 1e6), round(period_f * 1e6)], client=client
            )
            return bool(allowed), int(wait_us) / 1e6
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            _redis_down_until = time.monotonic() + REDIS_RETRY_AFTER
            log.warning("throttle: Redis unavailable (%s); limiting in-process", exc)
    return _local.hit(key, interval, period_f)


class RedisRateThrottle(SimpleRateThrottle):
    """DRF's throttle interface (scope, rate, ``get_cache_key``) on :func:`hit`."""

    def get_rate(self) -> str | None:
        # Read at construction (every request), not frozen at import like THROTTLE_RATES.
        self.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        return super().get_rate()

    def scoped_key(self, ident: str) -> str:
        return f"{KEY_PREFIX}:{self.scope}:{ident}"

    def allow_request(self, request: Request, view) -> bool:
        self._wait = 0.0
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        allowed, self._wait = hit(key, self.num_requests, self.duration)
        return allowed

    def wait(self) -> float | None:
        """Seconds until this client may try again (DRF sends it as Retry-After)."""
        return self._wait or None


class OrderPlacementThrottle(RedisRateThrottle):
    """Per buyer: a bot hammering the buy button gains nothing but 429s."""

    scope = "order"

    def get_cache_key(self, request: Request, view) -> str:
        user = request.user
        ident = f"u{user.pk}" if user and user.is_authenticated else self.get_ident(request)
        return self.scoped_key(ident)


class OrderPlacementIPThrottle(RedisRateThrottle):
    """Per client address, whoever is logged in: many accounts behind one bot still share it."""

    scope = "order_ip"

    def get_cache_key(self, request: Request, view) -> str:
        return self.scoped_key(self.get_ident(request))


class AuthThrottle(RedisRateThrottle):
    """Register and token, per address and per username: slows password guessing from one
    address, and guessing one account's password from many addresses (``auth`` rate each)."""

    scope = "auth"

    def get_cache_key(self, request: Request, view) -> str:
        return self.scoped_key(self.get_ident(request))

    def allow_request(self, request: Request, view) -> bool:
        self._wait = 0.0
        if self.rate is None:
            return True
        self._wait = self.attempt(self.get_ident(request), _submitted_username(request))
        return not self._wait

    def attempt(self, ident: str, username: str | None) -> float:
        """Count one sign-in attempt from address ``ident`` for ``username``; 0.0 when allowed,
        else the seconds to wait. The browser login shares these budgets through
        :func:`login_attempt`."""
        allowed, wait = hit(self.scoped_key(ident), self.num_requests, self.duration)
        if not allowed or not username:
            return wait
        digest = hashlib.sha256(username.lower().encode()).hexdigest()[:32]
        allowed, wait = hit(self.scoped_key(f"user:{digest}"), self.num_requests, self.duration)
        return wait


def login_attempt(request: HttpRequest, username: str | None) -> float:
    """For the browser login view: 0.0 if this attempt may proceed, else seconds to wait
    (answer 429 with Retry-After). Same budgets and client address rules (NUM_PROXIES) as the
    API's token endpoint."""
    throttle = AuthThrottle()
    return 0.0 if throttle.rate is None else throttle.attempt(throttle.get_ident(request), username)


def _submitted_username(request: Request) -> str | None:
    """The username in the body, if any (a body DRF cannot parse raises its usual 400 here)."""
    data = request.data
    value = data.get("username") if hasattr(data, "get") else None
    return value if isinstance(value, str) and value else None


def reset_local_fallback() -> None:
    """Forget the in-process fallback's state and retry Redis at once (tests)."""
    global _redis_down_until
    _redis_down_until = 0.0
    _local.clear()
