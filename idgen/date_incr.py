"""Human-readable order numbers: ``yyyymmdd`` followed by a zero-padded daily counter from Redis.

``20261124000000123`` is the 123rd id of 24 Nov 2026. The counter lives in
``idgen:{date}:<yyyymmdd>`` (``{date}`` is a literal Redis Cluster hash tag, so every day's key
sits in one slot) and expires a grace period after its day, so keys do not pile up.

* Plain mode (``segment_size=1``): one ``INCRBY`` per id -- dense, but a round trip each.
* Segment mode (``segment_size=N``): ``INCRBY N`` reserves a block that is handed out locally,
  as Meituan Leaf's segment mode does: one round trip per N ids. Ids stay unique and increase
  within a process, but across processes they interleave by block, and a process that exits
  leaves the rest of its block unused (gaps).

Redis restart without persistence resets the counter; with a :mod:`floor store <idgen.floor>` the
counter restarts above every value handed out, at the cost of one durable write per ``reserve``
ids and a gap of up to ``reserve`` after a restart. Without one, run Redis with AOF.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from .floor import FloorStore

if TYPE_CHECKING:
    import redis

# Expire a day key after its day, by Redis's clock: an expire-at already past there (a client
# clock far behind) must not delete the counter on the spot and restart it at 1.
_EXPIRE_AFTER_DAY = """
local function expire_after_day(key, at, grace)
  if redis.call('TTL', key) >= 0 then return end
  if at > tonumber(redis.call('TIME')[1]) then
    redis.call('EXPIREAT', key, at)
  else
    redis.call('EXPIRE', key, grace)
  end
end
"""

# KEYS: day key. ARGV: n, expire-at (Unix s), grace (s). Returns the counter after the increment.
_INCR = (
    _EXPIRE_AFTER_DAY
    + """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
expire_after_day(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
return v
"""
)

# KEYS: day key. ARGV: n, ceiling (a floor already stored durably).
# {v, 0}: incremented to v. {0, 0}: key missing (new day or Redis lost it): initialise from the
# floor store. {-1, cur}: v would pass the ceiling: raise the stored floor first.
_INCR_UNDER_CEILING = """
local cur = redis.call('GET', KEYS[1])
if not cur then return {0, 0} end
local v = tonumber(cur) + tonumber(ARGV[1])
if v > tonumber(ARGV[2]) then return {-1, tonumber(cur)} end
redis.call('INCRBY', KEYS[1], ARGV[1])
return {v, 0}
"""

# KEYS: day key. ARGV: floor, expire-at, grace. Creates the key at the floor unless it exists.
_INIT_AT_FLOOR = (
    _EXPIRE_AFTER_DAY
    + """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  expire_after_day(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
end
"""
)


class DateIncrGenerator:
    """``yyyymmdd`` + ``digits``-digit daily counter, plain (one INCR per id) or segmented."""

    def __init__(
        self,
        redis_client: redis.Redis,
        segment_size: int = 1,
        *,
        prefix: str = "idgen",
        digits: int = 9,
        tz: tzinfo = UTC,
        floor_store: FloorStore | None = None,
        floor_reserve: int | None = None,
        key_grace_s: int = 86_400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if segment_size < 1:
            raise ValueError("segment_size must be >= 1")
        if not 1 <= digits <= 10:
            raise ValueError("digits must be in 1..10 (ids must fit in a signed 64-bit integer)")
        self._redis = redis_client
        self.segment_size = segment_size
        self.prefix = prefix
        self.digits = digits
        self._scale = 10**digits
        self._tz = tz
        self._floor_store = floor_store
        self._reserve = floor_reserve if floor_reserve is not None else max(1000, 10 * segment_size)
        self._grace = key_grace_s
        self._clock = clock
        self._incr = redis_client.register_script(_INCR)
        self._incr_ceiling = redis_client.register_script(_INCR_UNDER_CEILING)
        self._init_at_floor = redis_client.register_script(_INIT_AT_FLOOR)
        self._ceilings: dict[str, int] = {}
        self._lock = threading.Lock()
        # Current day and block. _cur == _hi means the block is used up.
        self._day = ""
        self._day_end = float("-inf")  # Unix seconds of the next midnight in tz
        self._base = 0
        self._cur = 0
        self._hi = 0

    def key(self, day: str) -> str:
        return f"{self.prefix}:{{date}}:{day}"

    def next_id(self) -> int:
        """One id, greater than every id this generator returned before."""
        with self._lock:
            cur = self._cur
            if cur < self._hi and self._clock() < self._day_end:
                self._cur = cur = cur + 1
                return self._base + cur
            first, _ = self._refill(1)
            return self._base + first

    def next_ids(self, n: int) -> list[int]:
        """``n`` ascending ids; what the current block lacks comes from one ``INCRBY``."""
        out: list[int] = []
        while n > 0:
            with self._lock:
                if self._cur < self._hi and self._clock() < self._day_end:
                    first = self._cur + 1
                    count = min(n, self._hi - self._cur)
                    self._cur += count
                else:
                    first, count = self._refill(n)
                base = self._base
            out.extend(range(base + first, base + first + count))
            n -= count
        return out

    @staticmethod
    def parse(order_id: int, digits: int = 9) -> tuple[date, int]:
        """Split an id into its day and that day's counter value."""
        day, counter = divmod(order_id, 10**digits)
        try:
            return datetime.strptime(f"{day:08d}", "%Y%m%d").date(), counter
        except ValueError:
            raise ValueError(f"{order_id} is not a {8 + digits}-digit date id") from None

    # -- internals (lock held) ----------------------------------------------------------------
    def _refill(self, want: int) -> tuple[int, int]:
        """Fetch a block for the current day; take ``want`` ids of it (or all, if smaller).

        Returns (first counter value taken, count taken). The rest of the block stays local.
        """
        now = self._clock()
        if now >= self._day_end:
            self._enter_day(now)
        size = max(self.segment_size, want)
        hi = self._fetch(size)
        if hi >= self._scale:
            raise OverflowError(f"the {self._day} counter passed {self.digits} digits")
        first = hi - size + 1
        count = min(want, size)
        self._cur, self._hi = first + count - 1, hi
        return first, count

    def _enter_day(self, now: float) -> None:
        """Switch to the day of ``now``. Only ever forwards: a clock stepping back over midnight
        keeps the later day, so ids never decrease."""
        local = datetime.fromtimestamp(now, self._tz)
        day = local.strftime("%Y%m%d")
        if day <= self._day:
            return
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), self._tz)
        self._day, self._day_end = day, midnight.timestamp()
        self._base = int(day) * self._scale
        self._cur = self._hi = 0  # leftovers of yesterday's block are dropped

    def _fetch(self, n: int) -> int:
        """Advance the day's counter by ``n`` in Redis; return its new value."""
        key = self.key(self._day)
        expire_at = int(self._day_end) + self._grace
        store = self._floor_store
        if store is None:
            return int(self._incr(keys=[key], args=[n, expire_at, self._grace]))
        day = self._day
        while True:
            value, cur = self._incr_ceiling(keys=[key], args=[n, self._ceilings.get(day, 0)])
            if value > 0:
                return int(value)
            if value == 0:  # start of the day, or Redis restarted: resume above the stored floor
                self._init_at_floor(keys=[key], args=[store.load(day), expire_at, self._grace])
            else:  # reserve ahead durably before Redis may hand out more
                self._ceilings = {day: store.raise_to(day, int(cur) + n + self._reserve)}
