"""``Redlock``: the lock over N independent Redis masters (quorum N//2 + 1).

Same scripts and key layout as :class:`seckill.lock.Lock` on every master, same interface.
Acquire runs the try-acquire script on each master with one token; it holds if a quorum said
yes *and* the time spent is well inside the lease (validity = ttl - elapsed - drift). On
failure it releases on all masters and retries after a random delay (no shared wait queue
exists across masters, so waiting is a jittered retry, never a spin).

Caveats (see docs/lock.md): Redlock assumes bounded clock drift and process pauses; its fence
is the maximum of the per-master counters in the winning quorum, increasing as long as the
masters keep their data (restarted masters without persistence should stay down for a TTL).
Give each client a ``socket_timeout`` well below ``ttl`` so a hung master cannot stall you.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

from .errors import LockError, LockNotOwnedError, LockUnavailableError
from .keys import LockKeys, new_token
from .lock import UNREACHABLE, HeldWith, run_script
from .protocol import seconds_to_ms
from .scripts import ACQUIRE, EXTEND, RELEASE, Script
from .watchdog import RENEWER, Renewal


class Redlock(HeldWith):
    """Distributed lock over independent masters; interface of :class:`seckill.lock.Lock`."""

    def __init__(
        self,
        clients: Sequence[Any],
        name: str,
        ttl: float = 10.0,
        watchdog: bool = False,
        *,
        blocking_timeout: float | None = None,
        retry_delay: float = 0.05,
        drift_factor: float = 0.01,
        on_lost: Callable[[Redlock], None] | None = None,
    ) -> None:
        if not clients:
            raise ValueError("Redlock needs at least one Redis client")
        self.clients = list(clients)
        self.quorum = len(self.clients) // 2 + 1
        self.name = name
        self.keys = LockKeys.for_name(name)
        self.key = self.keys.lock
        self.ttl = ttl
        self.ttl_ms = seconds_to_ms(ttl, "ttl")
        self.watchdog = watchdog
        self.blocking_timeout = blocking_timeout
        self.retry_delay = retry_delay
        self.drift = ttl * drift_factor + 0.002
        self.on_lost = on_lost
        self.fence: int | None = None
        self.token: str | None = None
        #: Seconds (monotonic clock) until which the last acquire/extend is certainly valid.
        self.valid_until = 0.0
        self.lease_lost = False
        self._watchdog: Renewal | None = None

    def __repr__(self) -> str:
        return f"<Redlock {self.key!r} on {len(self.clients)} masters fence={self.fence}>"

    def _on_all(self, script: Script, args: tuple[Any, ...]) -> tuple[list[int], int]:
        """Run ``script`` on every master; results of those that answered, and the error count."""
        results, errors = [], 0
        for client in self.clients:
            try:
                results.append(int(run_script(client, script, self.keys.script_keys, args)))
            except RedisError:  # down, timed out, or refusing (READONLY, OOM): no vote
                errors += 1
        return results, errors

    def _try_once(self) -> bool:
        token = new_token()
        start = time.monotonic()
        results, _ = self._on_all(ACQUIRE, (token, self.ttl_ms, 0, 0, 0, 0))
        fences = [r for r in results if r > 0]
        validity = self.ttl - (time.monotonic() - start) - self.drift
        if len(fences) >= self.quorum and validity > 0:
            self.token, self.fence, self.lease_lost = token, max(fences), False
            self.valid_until = start + self.ttl - self.drift
            return True
        self._on_all(RELEASE, (token, 0, 0))  # undo the minority we did get
        return False

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Acquire on a quorum of masters; False when not acquired within ``timeout``."""
        if self.token is not None:
            raise LockError(
                f"Redlock {self.name!r} already held by this object", lock_name=self.name
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._try_once():
            if not blocking:
                return False
            pause = random.uniform(0.5, 1.5) * self.retry_delay
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                pause = min(pause, left)
            time.sleep(pause)
        if self.watchdog:
            token = self.token
            self._watchdog = RENEWER.register(  # weakly: these callables do not hold `self`
                lambda lock: lock._extend_quorum(token, lock.ttl_ms, 0),
                interval=self.ttl / 3,
                lease=self.ttl,
                on_lost=Redlock._lost,
                name=f"redlock:{self.name}",
                owner=self,
                leased_at=self.valid_until - self.ttl + self.drift,
            )
        return True

    def _extend_quorum(self, token: str | None, ms: int, add: int) -> bool:
        start = time.monotonic()
        results, errors = self._on_all(EXTEND, (token, ms, add))
        if sum(results) >= self.quorum:
            self.valid_until = start + ms / 1000 - self.drift
            return True
        if errors and sum(results) + errors >= self.quorum:
            raise LockUnavailableError(
                f"Redlock {self.name!r}: {errors} masters unreachable during extend",
                lock_name=self.name,
            )
        return False

    def release(self) -> None:
        """Release on all masters; LockNotOwnedError if a quorum no longer had our token."""
        token = self.token
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if token is None:
            raise LockNotOwnedError(
                f"cannot release Redlock {self.name!r}: not acquired", lock_name=self.name
            )
        self.token = None
        results, errors = self._on_all(RELEASE, (token, 0, 0))
        released = sum(1 for r in results if r == 1)
        if released >= self.quorum:
            return
        if released + errors >= self.quorum:
            raise LockUnavailableError(
                f"Redlock {self.name!r}: released on {released} masters, {errors} unreachable",
                lock_name=self.name,
            )
        raise LockNotOwnedError(
            f"Redlock {self.name!r} was not owned at release (held on {released} of "
            f"{len(self.clients)} masters): the lease expired",
            lock_name=self.name,
        )

    def extend(self, additional: float | None = None) -> bool:
        """Reset the lease to ``ttl`` or add ``additional`` seconds, on a quorum."""
        if self.token is None:
            raise LockNotOwnedError(
                f"cannot extend Redlock {self.name!r}: not acquired", lock_name=self.name
            )
        if additional is None:
            ok = self._extend_quorum(self.token, self.ttl_ms, 0)
        else:
            ok = self._extend_quorum(self.token, seconds_to_ms(additional, "additional"), 1)
        if not ok:
            raise LockNotOwnedError(
                f"cannot extend Redlock {self.name!r}: lease lost", lock_name=self.name
            )
        return True

    def _count(self, predicate: Callable[[Any], bool]) -> int:
        count = 0
        for client in self.clients:
            try:
                value = client.get(self.key)
            except UNREACHABLE:
                continue
            if isinstance(value, bytes):
                value = value.decode()
            count += predicate(value)
        return count

    def owned(self) -> bool:
        """True if a quorum of masters hold our token and the validity time has not passed."""
        if self.token is None or time.monotonic() >= self.valid_until:
            return False
        return self._count(lambda v: v == self.token) >= self.quorum

    def locked(self) -> bool:
        """True if a quorum of masters hold some token."""
        return self._count(lambda v: v is not None) >= self.quorum

    def _lost(self) -> None:
        self.lease_lost = True
        if self.on_lost is not None:
            self.on_lost(self)
