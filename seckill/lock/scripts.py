"""The Lua scripts: every state change of a lock is one atomic compare-and-act on the server.

Shared by the sync, asyncio, Redlock and redis-py compatible front ends. KEYS is the lock key K
(it routes the call in a Cluster) and, only when K has no hash tag of its own, the prefix B of
the auxiliary keys (``{K}``; otherwise B = K). The auxiliary keys B:fence, B:queue, B:waiters,
B:depth and the per-waiter wake list B:wake:<token> are derived inside the script (see
``keys.LockKeys``). They share K's Cluster slot (Redis 7 lets a script touch undeclared keys of
the slot it runs for). One key to pack and parse also keeps the hot path as cheap as a bare SET.

Fences: B:fence lives ``FENCE_LIFE_MS`` past the last acquisition (it used to live forever, one
key per lock name). A counter that expired restarts from the server clock in microseconds, above
every fence the old counter handed out as long as it handed out fewer than one per microsecond
and the server clock did not step back by more than the idle day.

Return conventions (integers, cheap to parse):

- ACQUIRE: ``> 0`` acquired, the value is the new fence; ``< 0`` not acquired, value is
  ``-(1 + holder's PTTL in ms)`` (``-1`` when unknown) so a waiter can time its fallback poll.
- REENTER: new depth, or 0 if the token no longer holds the lock.
- RELEASE: 1 released (or handed to the next waiter), 2 still held (reentrant depth > 0),
  0 not the owner.
- EXTEND: 1 extended, 0 not the owner.
- CANCEL: fence if the lock was handed to this waiter just before it gave up, else 0.
- A wake list holds the handed-over fence, or 0 for "the lock is free, race for it"
  (unfair mode only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA1: run with EVALSHA, falling back to EVAL on NOSCRIPT."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


FENCE_LIFE_MS = 24 * 3600 * 1000

_KEYS = """
local K = KEYS[1]
local B = KEYS[2] or K
local FENCE, QUEUE, WAITERS, DEPTH = B .. ':fence', B .. ':queue', B .. ':waiters', B .. ':depth'
"""

# The next fence: INCR, reseeded from the server clock (microseconds, built as a string: Lua
# numbers print with 14 digits) when the counter had expired; the counter outlives the lease.
_NEXT_FENCE = """
local function next_fence(ttl_ms)
  local fence = redis.call('INCR', FENCE)
  if fence == 1 then
    local t = redis.call('TIME')
    local seed = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', FENCE, seed)
    fence = tonumber(seed)
  end
  redis.call('PEXPIRE', FENCE, FENCE_LIFE + ttl_ms)
  return fence
end
""".replace("FENCE_LIFE", str(FENCE_LIFE_MS))

# Helpers for the slow paths (someone is queued). Kept out of the fast paths on purpose:
# creating these closures and key names costs the server a few microseconds per call, as
# much as the whole uncontended acquire.
_PRELUDE = """
local WAITERS, DEPTH = B .. ':waiters', B .. ':depth'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Give the (free) lock to the first waiter whose liveness lease has not run out, skipping
-- dead ones. The new holder's fence is pushed to its wake list, unless it is `me` (the
-- caller itself, which gets the fence as the script's return value). With give == false
-- (unfair mode) the waiter is only woken (a 0 in its wake list) to race for the free lock.
local function hand_off(me, give)
  local now = nil
  while true do
    local w = redis.call('LPOP', QUEUE)
    if not w then return false, nil end
    local info = redis.call('HGET', WAITERS, w)
    if info then
      redis.call('HDEL', WAITERS, w)
      now = now or now_ms()
      local deadline, ttl = string.match(info, '^(%d+):(%d+)$')
      if tonumber(deadline) >= now then
        local fence = 0
        if give then
          redis.call('SET', K, w, 'PX', ttl)
          redis.call('DEL', DEPTH)
          fence = next_fence(tonumber(ttl))
        end
        if w ~= me then
          local wake = B .. ':wake:' .. w
          redis.call('RPUSH', wake, fence)
          redis.call('PEXPIRE', wake, ttl)
        end
        return w, fence
      end
    end
  end
end
"""

# ARGV: token, ttl_ms, enqueue (0/1), waiter_lease_ms, fair (0/1), selfwake (0/1)
# selfwake: the caller pipelines BLPOP on its wake list right behind this script, so a win
# is also pushed there and that BLPOP returns at once (one round trip, win or wait).
ACQUIRE = Script(
    "acquire",
    """
local K, token = KEYS[1], ARGV[1]
local B = KEYS[2] or K
local FENCE, QUEUE = B .. ':fence', B .. ':queue'
"""
    + _NEXT_FENCE
    + """
local function won(fence)
  if ARGV[6] == '1' then
    local wake = B .. ':wake:' .. token
    redis.call('RPUSH', wake, fence)
    redis.call('PEXPIRE', wake, ARGV[2])
  end
  return fence
end
local holder = redis.call('GET', K)
if not holder and (ARGV[5] ~= '1' or redis.call('EXISTS', QUEUE) == 0) then
  -- Fast path: free, and nobody queued (or unfair). No stale K:depth can exist here: it
  -- always gets the lease's exact expiry, is deleted on release and on hand-off, and
  -- RELEASE reads it only for reentrant holders.
  redis.call('SET', K, token, 'PX', ARGV[2])
  if ARGV[5] ~= '1' and ARGV[3] == '1' then
    redis.call('HDEL', B .. ':waiters', token)  -- unfair re-poll: we left the queue
  end
  return won(next_fence(tonumber(ARGV[2])))
end
"""
    + _PRELUDE
    + """
if not holder then
  -- Free, with waiters queued: the first live one gets it (maybe us).
  local w, fence = hand_off(token, true)
  if not w then
    redis.call('SET', K, token, 'PX', ARGV[2])
    return won(next_fence(tonumber(ARGV[2])))
  end
  if w == token then return won(fence) end
elseif holder == token then
  -- Handed to us while we were between BLPOP and this re-poll: collect the fence. (No fence
  -- waiting for us: another holder uses the same caller-supplied token; it is not ours.)
  local wake = B .. ':wake:' .. token
  local fence = redis.call('LPOP', wake)
  if fence then
    redis.call('DEL', wake)
    redis.call('PEXPIRE', K, ARGV[2])  -- the lease restarts now: the caller counts from here
    return won(tonumber(fence))
  end
end
if ARGV[3] == '1' then
  local lease = tonumber(ARGV[4])
  local info = (now_ms() + lease) .. ':' .. ARGV[2]
  if redis.call('HSET', WAITERS, token, info) == 1 then redis.call('RPUSH', QUEUE, token) end
  redis.call('PEXPIRE', QUEUE, 2 * lease)
  redis.call('PEXPIRE', WAITERS, 2 * lease)
end
local pttl = redis.call('PTTL', K)
if pttl < 0 then return -1 end
return -1 - pttl
""",
)

# ARGV: token, ttl_ms
REENTER = Script(
    "reenter",
    _KEYS
    + """
if redis.call('GET', K) ~= ARGV[1] then return 0 end
local extra = redis.call('INCR', DEPTH)
redis.call('PEXPIRE', K, ARGV[2])
redis.call('PEXPIRE', DEPTH, ARGV[2])
return extra + 1
""",
)

# ARGV: token, reentrant (0/1), fair (0/1)
RELEASE = Script(
    "release",
    """
local K = KEYS[1]
local B = KEYS[2] or K
if redis.call('GET', K) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
  local DEPTH = B .. ':depth'
  local extra = tonumber(redis.call('GET', DEPTH) or '0')
  if extra > 1 then
    redis.call('DECR', DEPTH)
    return 2
  elseif extra == 1 then
    redis.call('DEL', DEPTH)
    return 2
  end
end
local FENCE, QUEUE = B .. ':fence', B .. ':queue'
if redis.call('EXISTS', QUEUE) == 0 then
  redis.call('DEL', K)  -- fast path: nobody waits
  return 1
end
"""
    + _NEXT_FENCE
    + _PRELUDE
    + """
if ARGV[3] == '1' then
  if not hand_off(false, true) then redis.call('DEL', K) end
else
  redis.call('DEL', K)
  hand_off(false, false)
end
return 1
""",
)

# ARGV: token, ms, add (0: set the lease to ms; 1: add ms to what is left)
EXTEND = Script(
    "extend",
    _KEYS
    + """
if redis.call('GET', K) ~= ARGV[1] then return 0 end
local ms = tonumber(ARGV[2])
if ARGV[3] == '1' then
  local left = redis.call('PTTL', K)
  if left > 0 then ms = ms + left end
end
redis.call('PEXPIRE', K, ms)
redis.call('PEXPIRE', DEPTH, ms)
return 1
""",
)

# ARGV: token, ttl_ms. A waiter gives up: leave the queue; if the lock reached us meanwhile,
# keep it, with its lease restarted now (the caller does not know when it was handed over).
CANCEL = Script(
    "cancel",
    _KEYS
    + """
local wake = B .. ':wake:' .. ARGV[1]
redis.call('LREM', QUEUE, 0, ARGV[1])
redis.call('HDEL', WAITERS, ARGV[1])
local fence = redis.call('LPOP', wake)
redis.call('DEL', wake)
if redis.call('GET', K) == ARGV[1] then
  redis.call('PEXPIRE', K, ARGV[2])
  return tonumber(fence or redis.call('GET', FENCE))
end
return 0
""",
)

ALL_SCRIPTS = (ACQUIRE, REENTER, RELEASE, EXTEND, CANCEL)
