"""The Lua scripts: every state change of a lock is one atomic compare-and-act on the server.

Shared by the sync, asyncio and Redlock front ends. KEYS are always ``LockKeys.all``:
lock, fence, queue, waiters, depth. The per-waiter wake list ``<lock>:wake:<token>`` is built
inside the script from KEYS[1]; it shares KEYS[1]'s hash tag, hence its Cluster slot.

Return conventions (integers, cheap to parse):

- ACQUIRE: ``> 0`` acquired, the value is the new fence; ``< 0`` not acquired, value is
  ``-(1 + holder's PTTL in ms)`` (``-1`` when unknown) so a waiter can time its fallback poll.
- REENTER: new depth, or 0 if the token no longer holds the lock.
- RELEASE: 1 released (or handed to the next waiter), 2 still held (reentrant depth > 0),
  0 not the owner.
- EXTEND: 1 extended, 0 not the owner.
- CANCEL: fence if the lock was handed to this waiter just before it gave up, else 0.
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


# Helpers prepended to the scripts that may hand the lock to a waiter.
_PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Give the (free) lock to the first waiter whose liveness lease has not run out, skipping
-- dead ones. The new holder's fence is pushed to its wake list, unless it is `me` (the
-- caller itself, which gets the fence as the script's return value).
local function hand_off(me)
  local now = nil
  while true do
    local w = redis.call('LPOP', KEYS[3])
    if not w then return false, nil end
    local info = redis.call('HGET', KEYS[4], w)
    if info then
      redis.call('HDEL', KEYS[4], w)
      now = now or now_ms()
      local deadline, ttl = string.match(info, '^(%d+):(%d+)$')
      if tonumber(deadline) >= now then
        redis.call('SET', KEYS[1], w, 'PX', ttl)
        redis.call('DEL', KEYS[5])
        local fence = redis.call('INCR', KEYS[2])
        if w ~= me then
          local wake = KEYS[1] .. ':wake:' .. w
          redis.call('RPUSH', wake, fence)
          redis.call('PEXPIRE', wake, ttl)
        end
        return w, fence
      end
    end
  end
end
"""

# ARGV: token, ttl_ms, enqueue (0/1), waiter_lease_ms
ACQUIRE = Script("acquire", _PRELUDE + """
local token = ARGV[1]
local holder = redis.call('GET', KEYS[1])
if not holder then
  local w, fence = false, nil
  if redis.call('EXISTS', KEYS[3]) == 1 then w, fence = hand_off(token) end
  if not w then
    redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
    redis.call('DEL', KEYS[5])
    return redis.call('INCR', KEYS[2])
  end
  if w == token then return fence end
elseif holder == token then
  -- Handed to us while we were between BLPOP and this re-poll: collect the fence.
  local wake = KEYS[1] .. ':wake:' .. token
  local fence = redis.call('LPOP', wake)
  redis.call('DEL', wake)
  return tonumber(fence or redis.call('GET', KEYS[2]))
end
if ARGV[3] == '1' then
  local lease = tonumber(ARGV[4])
  local info = (now_ms() + lease) .. ':' .. ARGV[2]
  if redis.call('HSET', KEYS[4], token, info) == 1 then redis.call('RPUSH', KEYS[3], token) end
  redis.call('PEXPIRE', KEYS[3], 2 * lease)
  redis.call('PEXPIRE', KEYS[4], 2 * lease)
end
local pttl = redis.call('PTTL', KEYS[1])
if pttl < 0 then return -1 end
return -1 - pttl
""")

# ARGV: token, ttl_ms
REENTER = Script("reenter", """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local extra = redis.call('INCR', KEYS[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[5], ARGV[2])
return extra + 1
""")

# ARGV: token, reentrant (0/1)
RELEASE = Script("release", _PRELUDE + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
  local extra = tonumber(redis.call('GET', KEYS[5]) or '0')
  if extra > 1 then
    redis.call('DECR', KEYS[5])
    return 2
  elseif extra == 1 then
    redis.call('DEL', KEYS[5])
    return 2
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 and hand_off(false) then return 1 end
redis.call('DEL', KEYS[1])
return 1
""")

# ARGV: token, ms, add (0: set the lease to ms; 1: add ms to what is left)
EXTEND = Script("extend", """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ms = tonumber(ARGV[2])
if ARGV[3] == '1' then
  local left = redis.call('PTTL', KEYS[1])
  if left > 0 then ms = ms + left end
end
redis.call('PEXPIRE', KEYS[1], ms)
redis.call('PEXPIRE', KEYS[5], ms)
return 1
""")

# ARGV: token. A waiter gives up: leave the queue; if the lock reached us meanwhile, keep it.
CANCEL = Script("cancel", """
local wake = KEYS[1] .. ':wake:' .. ARGV[1]
redis.call('LREM', KEYS[3], 0, ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
local fence = redis.call('LPOP', wake)
redis.call('DEL', wake)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return tonumber(fence or redis.call('GET', KEYS[2]))
end
return 0
""")

ALL_SCRIPTS = (ACQUIRE, REENTER, RELEASE, EXTEND, CANCEL)
