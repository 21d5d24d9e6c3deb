"""The synchronous lock: :class:`LockCore`'s protocol driven over a ``redis.Redis`` or
``redis.cluster.RedisCluster`` client (thread-safe: share one client, one Lock per holder)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from redis.cluster import RedisCluster
from redis.exceptions import AskError, MovedError, NoScriptError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .errors import LockTimeout, LockUnavailableError
from .keys import LockKeys
from .protocol import AcquireWait, BlockPop, Eval, LockCore, Op, Steps
from .scripts import ACQUIRE, Script
from .waits import acquire_wait_sync, bind_client, block_pop_sync
from .watchdog import RENEWER, Renewal

_monotonic = time.monotonic

UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


def run_script(client: Any, script: Script, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
    """EVALSHA, and EVAL once if the server does not know the script (restart, new node)."""
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return client.eval(script.source, len(keys), *keys, *args)


def unavailable(name: str, op: object, exc: Exception) -> LockUnavailableError:
    err = LockUnavailableError(
        f"lock {name!r}: Redis unreachable during {op!r} ({exc}); lock state unknown",
        lock_name=name,
    )
    err.__cause__ = exc
    return err


class HeldWith:
    """``with lock:`` - a blocking acquire bounded by ``blocking_timeout``, release on exit."""

    def __enter__(self) -> Self:
        if not self.acquire(blocking=True, timeout=self.blocking_timeout):
            raise LockTimeout.waiting_for(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class Lock(HeldWith, LockCore):
    """A Redis lease lock: ``SET NX PX`` semantics, compare-and-act release/extend via Lua,
    fencing tokens, FIFO hand-off to blocked waiters, optional watchdog and reentrancy.

    ``ttl`` is the lease in seconds. With ``watchdog=True`` the process's shared renewal thread
    renews the lease every ``ttl/3`` while this holder still owns it; a lost lease sets
    ``lease_lost`` and calls ``on_lost(lock)`` (on that thread: keep it short).
    ``blocking_timeout`` bounds the wait of ``with lock:`` (LockTimeout). ``fair=True``
    (default) hands the lock to waiters in FIFO order; ``fair=False`` lets a newcomer take a
    free lock ahead of woken waiters. ``poll_interval`` bounds how long a waiter sleeps
    without a wake-up before re-checking (only matters if a holder dies). ``keys`` overrides
    the key layout (:meth:`LockKeys.exact` is redis-py's: the lease is ``name`` itself).

    Blocking waits borrow a connection of their own from the client's pool (never the one a
    single-connection client shares with the holder); the renewal thread holds only a weak
    reference, so a Lock dropped without ``release()`` stops being renewed.
    """

    def __init__(
        self,
        redis: Any,
        name: str,
        ttl: float = 10.0,
        watchdog: bool = False,
        *,
        reentrant: bool = False,
        fair: bool = True,
        blocking_timeout: float | None = None,
        poll_interval: float = 1.0,
        on_lost: Callable[[Lock], None] | None = None,
        keys: LockKeys | None = None,
    ) -> None:
        super().__init__(
            name,
            ttl=ttl,
            reentrant=reentrant,
            fair=fair,
            blocking_timeout=blocking_timeout,
            poll_interval=poll_interval,
            on_lost=on_lost,
            keys=keys,
        )
        self._watchdog: Renewal | None = None
        bind_client(self, redis, watchdog)

    # -- I/O driver ----------------------------------------------------------------------------

    def _execute(self, op: Op) -> Any:
        self._sent_at = _monotonic()
        if type(op) is Eval:
            return run_script(self.redis, op.script, op.keys, op.args)
        if type(op) is AcquireWait:
            return self._acquire_wait(op)
        if type(op) is BlockPop:
            return self._block_pop(op)
        return self.redis.get(op.key)

    def _block_pop(self, op: BlockPop) -> Any:
        if self._wait_pool is not None:
            return block_pop_sync(self._wait_pool, op)
        pool = self._slot_pool(op.key)
        if pool is not None:
            # If the slot moved meanwhile, the cluster client follows the redirection instead.
            with contextlib.suppress(MovedError, AskError):
                return block_pop_sync(pool, op)
        return self.redis.blpop(list(op.keys), op.timeout)

    def _acquire_wait(self, op: AcquireWait) -> tuple[int, Any]:
        # ACQUIRE + BLPOP in one round trip on a borrowed connection: the client's, or on a
        # Cluster the lock slot's node's. Without one, on a redirection, or when the server
        # lost the script: one after the other.
        pool = self._wait_pool if self._wait_pool is not None else self._slot_pool(op.keys[0])
        if pool is not None:
            with contextlib.suppress(MovedError, AskError):
                replies = acquire_wait_sync(pool, op)
                if replies is not None:
                    return replies
        result = run_script(self.redis, ACQUIRE, op.keys, (*op.args, 0))
        if result > 0:
            return result, None
        return result, self._block_pop(op.block_pop())

    def _slot_pool(self, key: str | bytes) -> Any | None:
        """On a Cluster, the pool of the node serving ``key``'s slot (a wait's deadline is then
        ours on that node too); None for any other client."""
        if not isinstance(self.redis, RedisCluster):
            return None
        return self.redis.get_redis_connection(self.redis.get_node_from_key(key)).connection_pool

    def _drive(self, steps: Steps) -> Any:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as done:
                return done.value
            error = None
            try:
                value = self._execute(op)
            except UNREACHABLE as exc:
                error = unavailable(self.name, op, exc)
            except BaseException as exc:  # incl. cancellation: the steps may need to clean up
                error = exc

    # -- public API ----------------------------------------------------------------------------

    def acquire(
        self,
        blocking: bool = True,
        timeout: float | None = None,
        *,
        token: str | None = None,
        wake_on: tuple[str, ...] = (),
    ) -> bool:
        """Acquire the lock; False if not acquired (non-blocking, or ``timeout`` s passed).

        Sets :attr:`fence`. Blocking waiters sleep in BLPOP and are handed the lock in FIFO
        order, and return by ``timeout`` plus one round trip. A reentrant lock acquired again
        by the same holder just counts up. ``token`` names the holder (default: a fresh
        unique one); another process that knows it can release or extend the lease.

        ``wake_on``: lists (in the lock's hash slot on a cluster) the same wait also pops from.
        If one of them fires first the wait ends: :attr:`woken_by` is its (key, value), and
        the result says whether the lock was handed over meanwhile (then it is held).
        """
        fresh = self.token is None
        acquired = self._drive(self._acquire_steps(blocking, timeout, token, tuple(wake_on)))
        if acquired and fresh and self.watchdog:
            self._start_watchdog()
        return acquired

    def release(self) -> None:
        """Release (or count down a reentrant hold). LockNotOwnedError if the lease was lost."""
        if self.depth <= 1:
            self._stop_watchdog()
        self._drive(self._release_steps())

    def extend(self, additional: float | None = None, *, replace_ttl: bool = False) -> bool:
        """Reset the lease to ``ttl`` (``additional=None``), add ``additional`` seconds to what
        is left, or set it to ``additional`` (``replace_ttl=True``). Only the owner can;
        LockNotOwnedError otherwise."""
        return self._drive(self._extend_steps(additional, replace_ttl))

    def owned(self) -> bool:
        """True if this holder's token is the lock's current value (one GET)."""
        return self._drive(self._owned_steps())

    def locked(self) -> bool:
        """True if anyone holds the lock."""
        return self._drive(self._locked_steps())

    # -- watchdog ------------------------------------------------------------------------------

    def _start_watchdog(self) -> None:
        token = self.token
        assert token is not None
        # The renewer keeps only a weak reference: these callables must not hold `self`.
        self._watchdog = RENEWER.register(
            lambda lock: lock._drive(lock._renew_steps(token)),
            interval=self.ttl / 3,
            lease=self.ttl,
            on_lost=LockCore._lost,
            name=self.name,
            owner=self,
            leased_at=self.leased_at,
        )

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
