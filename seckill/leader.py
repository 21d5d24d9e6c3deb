"""Leader election on a Redis lease: one instance of a periodic job acts, another takes over
when it dies. Only ``redis`` and the stdlib (no Django), like the lock library.

The lease is ``SET key token NX PX ttl`` with a random per-term token; renew and release are Lua
compare-and-act scripts, so only the current owner can extend or delete it. Every acquisition
INCRs a persistent term counter in the same script, so the term (a fencing number) grows each
time leadership changes hands and a deposed leader's writes can be told apart from the new one's.

A leader that stops renewing (crash, SIGKILL, long pause) loses the lease after ``ttl``; another
node's :meth:`LeaderLease.try_acquire` then wins. The deposed node learns it on its next renew,
and :attr:`LeaderLease.is_leader` also turns False on its own once the lease could have expired
(measured from *before* the last successful request was sent), so it stops acting even while
Redis is unreachable.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from seckill.lock.keys import has_hash_tag

log = logging.getLogger(__name__)

# KEYS: lease, term. ARGV: token, ttl ms. Returns {1, term} when we lead (newly or already),
# {0, current term} otherwise.
ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(redis.call('GET', KEYS[2]) or '0')}
end
if current then return {0, tonumber(redis.call('GET', KEYS[2]) or '0')} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, redis.call('INCR', KEYS[2])}
"""

# KEYS: lease. ARGV: token, ttl ms. 1 if extended (we still own it), 0 if lost.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: token. 1 if deleted, 0 if it was not ours any more.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# A lease is trusted for this fraction of its ttl after the request that set it was sent:
# the margin absorbs clock-rate drift between this host and Redis.
VALIDITY = 0.9


def lease_key(name: str) -> str:
    """``name`` when it carries a hash tag, else ``leader:{name}`` (one Cluster slot with the
    term counter; the lock library's convention)."""
    return name if has_hash_tag(name) else f"leader:{{{name}}}"


def default_node_id() -> str:
    """host:pid, so a log or the lease value says which process leads."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaderLease:
    """One node's view of a named leadership lease (thread-safe: the heartbeat thread and the
    worker share it)."""

    def __init__(
        self, redis: redis.Redis, name: str, ttl: float = 30.0, node_id: str | None = None
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.redis = redis
        self.name = name
        self.ttl = float(ttl)
        self.node_id = node_id or default_node_id()
        self.key = lease_key(name)
        self.term_key = f"{self.key}:term"
        self._acquire = redis.register_script(ACQUIRE)
        self._renew = redis.register_script(RENEW)
        self._release = redis.register_script(RELEASE)
        self._state = threading.Lock()
        self._token: str | None = None
        self._term: int | None = None
        self._valid_until = 0.0

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    @property
    def is_leader(self) -> bool:
        """True while this node holds a lease that cannot have expired yet (no Redis call)."""
        with self._state:
            return self._token is not None and time.monotonic() < self._valid_until

    @property
    def valid_until(self) -> float:
        """``time.monotonic()`` deadline after which this node must assume it no longer leads."""
        with self._state:
            return self._valid_until if self._token is not None else 0.0

    @property
    def term(self) -> int | None:
        """The fencing number of this node's current term; None when not leading."""
        with self._state:
            return self._term if self._token is not None else None

    def try_acquire(self) -> bool:
        """Become leader if nobody is (or stay leader, extending the lease). Never blocks."""
        with self._state:
            token = self._token or f"{self.node_id}:{os.urandom(8).hex()}"
        sent = time.monotonic()
        won, term = self._acquire(keys=[self.key, self.term_key], args=[token, self.ttl_ms])
        with self._state:
            if won:
                if self._token != token:
                    log.info("%s: %s leads (term %s)", self.name, self.node_id, term)
                self._token, self._term = token, int(term)
                self._valid_until = sent + self.ttl * VALIDITY
            else:
                self._token, self._term = None, None
        return bool(won)

    def renew(self) -> bool:
        """Extend the lease if it is still ours; False (and no longer leader) if it was lost.

        Redis errors propagate and leave the state alone: :attr:`is_leader` then lapses by
        itself when the lease could have run out.
        """
        with self._state:
            token = self._token
        if token is None:
            return False
        sent = time.monotonic()
        extended = self._renew(keys=[self.key], args=[token, self.ttl_ms])
        with self._state:
            if self._token != token:  # released meanwhile
                return False
            if extended:
                self._valid_until = sent + self.ttl * VALIDITY
                return True
            log.warning("%s: %s lost the lease (term %s)", self.name, self.node_id, self._term)
            self._token, self._term = None, None
        return False

    def release(self) -> bool:
        """Step down: delete the lease if it is still ours, so a successor need not wait a ttl."""
        with self._state:
            token, self._token, self._term = self._token, None, None
        if token is None:
            return False
        return bool(self._release(keys=[self.key], args=[token]))

    def holder(self) -> str | None:
        """The node id of the current leader, if any (for dashboards and logs)."""
        value = self.redis.get(self.key)
        if value is None:
            return None
        text = value.decode() if isinstance(value, bytes) else str(value)
        return text.rsplit(":", 1)[0]

    def current_term(self) -> int:
        """The latest term handed out to anyone (0 before the first election)."""
        return int(self.redis.get(self.term_key) or 0)

    @contextmanager
    def heartbeat(self, interval: float | None = None) -> Iterator[threading.Event]:
        """Renew the lease every ``interval`` (ttl/3) in a daemon thread while the block runs.

        Yields an Event set once the lease is lost; the body should also poll
        :attr:`is_leader` between steps and stop acting when it turns False.
        """
        lost = threading.Event()
        stop = threading.Event()
        every = interval if interval is not None else self.ttl / 3

        def beat() -> None:
            while not stop.wait(every):
                try:
                    if not self.renew():
                        lost.set()
                        return
                except redis.RedisError as exc:
                    log.warning("%s: renew failed (%s); retrying", self.name, exc)
                    if not self.is_leader:
                        lost.set()
                        return

        thread = threading.Thread(target=beat, name=f"leader-heartbeat:{self.name}", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            stop.set()
            thread.join()


@dataclass(frozen=True)
class LeaderRun:
    """What :func:`run_as_leader` did: ``leader`` False means ``fn`` was not called."""

    leader: bool
    term: int | None = None
    result: Any = None
    lost: bool = False  # the lease was lost while fn ran: its later steps should have stopped


def run_as_leader(
    lease: LeaderLease,
    fn: Callable[..., Any],
    *args: Any,
    step_down: bool = False,
    **kwargs: Any,
) -> LeaderRun:
    """Call ``fn`` only if this node is (or now becomes) the leader, renewing during the call.

    Leadership is sticky by default: the lease is kept after the call so the same node keeps
    leading until it dies or stops renewing; ``step_down=True`` releases it afterwards.
    """
    if not (lease.renew() or lease.try_acquire()):
        return LeaderRun(leader=False)
    term = lease.term
    try:
        with lease.heartbeat() as lost:
            result = fn(*args, **kwargs)
        return LeaderRun(leader=True, term=term, result=result, lost=lost.is_set())
    finally:
        if step_down:
            lease.release()
