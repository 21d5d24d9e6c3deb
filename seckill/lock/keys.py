"""Redis key names for one lock: all in one hash slot, so every script runs on Redis Cluster."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from functools import lru_cache


def has_hash_tag(name: str) -> bool:
    """True when Redis Cluster would hash ``name`` by a ``{...}`` tag (non-empty, first pair)."""
    start = name.find("{")
    if start < 0:
        return False
    end = name.find("}", start + 1)
    return end > start + 1


def lock_key(name: str) -> str:
    """The main key: ``name`` itself when it carries a hash tag, else ``lock:{name}``."""
    return name if has_hash_tag(name) else f"lock:{{{name}}}"


class _TokenSource:
    """Unique per-acquisition tokens: a random 128-bit per-process prefix plus a counter.

    Unique across processes and hosts (the prefix) and within a process (the counter), for a
    fraction of an ``os.urandom`` call per acquisition. Re-seeded in a forked child, which
    would otherwise repeat its parent's tokens.
    """

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = os.urandom(16).hex() + "-"
        self.counter = itertools.count(1)

    def __call__(self) -> str:
        return self.prefix + format(next(self.counter), "x")


new_token = _TokenSource()


@dataclass(frozen=True, slots=True)
class LockKeys:
    """The lock key and its auxiliary keys (names must match ``scripts._KEYS``).

    - ``lock``: the lease, value = holder token, ``PX ttl``.
    - ``fence``: fencing counter, INCR'd on every acquisition; it lives a day past the last
      one (``scripts.FENCE_LIFE_MS``) and restarts from the server clock in microseconds, so a
      counter that expired never restarts below a fence it handed out.
    - ``queue`` + ``waiters``: FIFO list of waiting tokens and a hash token -> "deadline:ttl"
      (the waiter's own liveness lease); both carry a TTL and vanish when empty.
    - ``depth``: extra re-entries of a reentrant holder; same TTL as the lease.
    - ``wake(token)``: per-waiter list the releaser pushes the new fence into (BLPOP target); TTL.
    """

    lock: str
    fence: str
    queue: str
    waiters: str
    depth: str
    #: Prefix of the auxiliary keys: ``lock`` itself, unless that has no hash tag (:meth:`exact`).
    base: str = ""

    @classmethod
    def for_name(cls, name: str) -> LockKeys:
        """Keys of :class:`~seckill.lock.Lock`: ``lock_key(name)`` and its suffixed friends."""
        return _keys_for(cls, name)

    @classmethod
    def exact(cls, name: str) -> LockKeys:
        """Keys whose lease is ``name`` itself (redis-py's layout: ``GET name`` is the token).

        Without a hash tag the auxiliary keys hang off ``{name}``, which Redis Cluster hashes
        exactly as it hashes ``name``: same slot, so every script still runs in a Cluster.
        """
        return _exact_keys_for(cls, name)

    @property
    def all(self) -> tuple[str, str, str, str, str]:
        return (self.lock, self.fence, self.queue, self.waiters, self.depth)

    @property
    def script_keys(self) -> tuple[str] | tuple[str, str]:
        """KEYS passed to the scripts: the lock key (it routes the call in a Cluster), plus
        the auxiliary prefix when it differs; the scripts derive the auxiliary names from it."""
        return (self.lock,) if self.base == self.lock else (self.lock, self.base)

    def wake(self, token: str | bytes) -> str | bytes:
        # Must match the Lua side: B .. ':wake:' .. token (bytes for a caller's bytes token)
        if isinstance(token, bytes):
            return self.base.encode() + b":wake:" + token
        return f"{self.base}:wake:{token}"


@lru_cache(maxsize=4096)
def _keys_for(cls: type[LockKeys], name: str) -> LockKeys:
    # Cached: apps build a Lock object per request for a handful of names.
    return _layout(cls, lock_key(name), lock_key(name))


@lru_cache(maxsize=4096)
def _exact_keys_for(cls: type[LockKeys], name: str) -> LockKeys:
    if has_hash_tag(name) or "}" in name:
        # A "}" would end a wrapping tag early, so such a name (rare) keeps its own prefix:
        # fine on one Redis; on a Cluster its auxiliary keys may land in another slot.
        return _layout(cls, name, name)
    return _layout(cls, name, "{" + name + "}")


def _layout(cls: type[LockKeys], key: str, base: str) -> LockKeys:
    return cls(key, base + ":fence", base + ":queue", base + ":waiters", base + ":depth", base)
