"""Redis distributed locks for seckill - only ``redis`` and the stdlib, no Django.

- :class:`Lock`: single-Redis (or Redis Cluster) lease lock with fencing tokens, FIFO hand-off
  to blocked waiters, optional watchdog and reentrancy.
- :class:`AsyncLock`: the same over ``redis.asyncio``.
- :class:`Redlock`: the same interface over N independent masters.
- :class:`RedisPyCompatibleLock` / :class:`AsyncRedisPyCompatibleLock`: redis-py's ``Lock``
  interface on :class:`Lock` (``client.lock(name, lock_class=RedisPyCompatibleLock)``).
- :class:`NaiveLock`: the broken tutorial lock, kept to demonstrate failures. Never use it.
"""

from .aio import AsyncLock
from .compat import AsyncRedisPyCompatibleLock, RedisPyCompatibleLock
from .errors import LockError, LockNotOwnedError, LockTimeout, LockUnavailableError
from .keys import LockKeys, has_hash_tag, lock_key
from .lock import Lock
from .naive import NaiveLock
from .redlock import Redlock

__all__ = [
    "AsyncLock",
    "AsyncRedisPyCompatibleLock",
    "Lock",
    "LockError",
    "LockKeys",
    "LockNotOwnedError",
    "LockTimeout",
    "LockUnavailableError",
    "NaiveLock",
    "RedisPyCompatibleLock",
    "Redlock",
    "has_hash_tag",
    "lock_key",
]
