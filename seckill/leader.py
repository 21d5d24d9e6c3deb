"""Leader election on a Redis lease: one instance of a periodic job acts, another takes over
when it dies. Only ``redis``, the stdlib and the lock library (no Django), like the lock library.

The lease *is* a :class:`seckill.lock.Lock` (one lease primitive in the project): acquiring it
non-blocking is an election, its watchdog-free ``extend`` the renewal, its fence the term. The
lock's fencing counter grows on every acquisition, so the term grows each time leadership changes
hands and a deposed leader's writes can be told apart from the new one's. Beside the lease, a
``…:holder`` key names the leading node for dashboards and logs (expiring with the lease).

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

from seckill.lock import Lock, LockError, LockKeys, LockNotOwnedError
from seckill.lock.keys import has_hash_tag

log = logging.getLogger(__name__)

# A lease is trusted for this fraction of its ttl after the request that set it was sent:
# the margin absorbs clock-rate drift between this host and Redis.
VALIDITY = 0.9


def lease_key(name: str) -> str:
    """``name`` when it carries a hash tag, else ``leader:{name}`` (one Cluster slot for the
    lease, its fence and its holder key; the lock library's convention)."""
    return name if has_hash_tag(name) else f"leader:{{{name}}}"


def default_node_id() -> str:
    """host:pid, so a log or the holder key says which process leads."""
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
        self.term_key = LockKeys.for_name(self.key).fence
        self.holder_key = f"{self.key}:holder"
        self._io = threading.RLock()  # one Lock holder object, driven by one thread at a time
        self._state = threading.Lock()
        self._lock: Lock | None = None  # the lease while this node (believes it) leads
        self._term: int | None = None
        self._valid_until = 0.0

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    @property
    def is_leader(self) -> bool:
        """True while this node holds a lease that cannot have expired yet (no Redis call)."""
        with self._state:
            return self._lock is not None and time.monotonic() < self._valid_until

    @property
    def valid_until(self) -> float:
        """``time.monotonic()`` deadline after which this node must assume it no longer leads."""
        with self._state:
            return self._valid_until if self._lock is not None else 0.0

    @property
    def term(self) -> int | None:
        """The fencing number of this node's current term; None when not leading."""
        with self._state:
            return self._term if self._lock is not None else None

    def try_acquire(self) -> bool:
        """Become leader if nobody is (or stay leader, extending the lease). Never blocks."""
        with self._io:
            if self._lock is not None and self.renew():
                return True
            lease = Lock(self.redis, self.key, ttl=self.ttl)
            sent = time.monotonic()
            if not lease.acquire(blocking=False):
                return False
            self.redis.set(self.holder_key, self.node_id, px=self.ttl_ms)
            with self._state:
                self._lock, self._term = lease, lease.fence
                self._valid_until = sent + self.ttl * VALIDITY
            log.info("%s: %s leads (term %s)", self.name, self.node_id, lease.fence)
            return True

    def renew(self) -> bool:
        """Extend the lease if it is still ours; False (and no longer leader) if it was lost.

        Redis errors propagate and leave the state alone: :attr:`is_leader` then lapses by
        itself when the lease could have run out.
        """
        with self._io:
            lease = self._lock
            if lease is None:
                return False
            sent = time.monotonic()
            try:
                lease.extend()
            except LockNotOwnedError:
                log.warning("%s: %s lost the lease (term %s)", self.name, self.node_id, self._term)
                self._forget()
                return False
            self.redis.set(self.holder_key, self.node_id, px=self.ttl_ms)
            with self._state:
                self._valid_until = sent + self.ttl * VALIDITY
            return True

    def release(self) -> bool:
        """Step down: delete the lease if it is still ours, so a successor need not wait a ttl."""
        with self._io:
            lease = self._forget()
            if lease is None:
                return False
            try:
                lease.release()
            except LockNotOwnedError:
                return False
            return True

    def _forget(self) -> Lock | None:
        with self._state:
            lease, self._lock, self._term = self._lock, None, None
        return lease

    def holder(self) -> str | None:
        """The node id of the current leader, if any (for dashboards and logs)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(self.key)
        pipe.get(self.holder_key)
        leased, value = pipe.execute()
        if not leased or value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

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
                except (redis.RedisError, LockError) as exc:
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
