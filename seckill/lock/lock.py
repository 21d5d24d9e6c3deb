"""The synchronous lock: :class:`LockCore`'s protocol driven over a ``redis.Redis`` or
``redis.cluster.RedisCluster`` client (thread-safe: share one client, one Lock per holder)."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .errors import LockTimeout, LockUnavailableError
from .protocol import AcquireWait, BlockPop, Eval, LockCore, Op, Steps, bind_client
from .scripts import ACQUIRE, Script
from .watchdog import RENEWER, Renewal

UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


def run_script(client: Any, script: Script, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
    """EVALSHA, and EVAL once if the server does not know the script (restart, new node)."""
    try:
        return client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return client.eval(script.source, len(keys), *keys, *args)


def fill_acquire_wait(pipe: Any, op: AcquireWait) -> Any:
    """Queue ACQUIRE (selfwake=1) and BLPOP on a sync or asyncio pipeline."""
    pipe.evalsha(ACQUIRE.sha, len(op.keys), *op.keys, *op.args, 1)
    pipe.blpop([op.wake], op.timeout)
    return pipe


def acquire_wait_replies(replies: list[Any]) -> tuple[int, Any] | None:
    """The pipeline's (ACQUIRE result, BLPOP reply); None if the server had lost the script
    (restart, SCRIPT FLUSH): the caller then redoes the step without the pipeline."""
    result, popped = replies
    if isinstance(result, NoScriptError):
        return None
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return int(result), popped


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
    without a wake-up before re-checking (only matters if a holder dies).
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
    ) -> None:
        super().__init__(
            name,
            ttl=ttl,
            reentrant=reentrant,
            fair=fair,
            blocking_timeout=blocking_timeout,
            poll_interval=poll_interval,
            on_lost=on_lost,
        )
        self._watchdog: Renewal | None = None
        # A plain client can pipeline ACQUIRE + BLPOP; a cluster client runs them in turn.
        bind_client(self, redis, watchdog, pipelined=isinstance(redis, Redis))

    # -- I/O driver ----------------------------------------------------------------------------

    def _execute(self, op: Op) -> Any:
        if type(op) is Eval:
            return run_script(self.redis, op.script, op.keys, op.args)
        if type(op) is AcquireWait:
            return self._acquire_wait(op)
        if type(op) is BlockPop:
            return self.redis.blpop([op.key], op.timeout)
        return self.redis.get(op.key)

    def _acquire_wait(self, op: AcquireWait) -> tuple[int, Any]:
        if self._pipeline:
            pipe = fill_acquire_wait(self.redis.pipeline(transaction=False), op)
            replies = acquire_wait_replies(pipe.execute(raise_on_error=False))
            if replies is not None:
                return replies
        result = run_script(self.redis, ACQUIRE, op.keys, (*op.args, 0))
        if result > 0:
            return result, None
        return result, self.redis.blpop([op.wake], op.timeout)

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

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Acquire the lock; False if not acquired (non-blocking, or ``timeout`` s passed).

        Sets :attr:`fence`. Blocking waiters sleep in BLPOP and are handed the lock in FIFO
        order. A reentrant lock acquired again by the same holder just counts up.
        """
        fresh = self.token is None
        acquired = self._drive(self._acquire_steps(blocking, timeout))
        if acquired and fresh and self.watchdog:
            self._start_watchdog()
        return acquired

    def release(self) -> None:
        """Release (or count down a reentrant hold). LockNotOwnedError if the lease was lost."""
        if self.depth <= 1:
            self._stop_watchdog()
        self._drive(self._release_steps())

    def extend(self, additional: float | None = None) -> bool:
        """Reset the lease to ``ttl`` (``additional=None``) or add ``additional`` seconds to what
        is left. Only the owner can; LockNotOwnedError otherwise."""
        return self._drive(self._extend_steps(additional))

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
        self._watchdog = RENEWER.register(
            lambda: self._drive(self._renew_steps(token)),
            interval=self.ttl / 3,
            lease=self.ttl,
            on_lost=self._lost,
            name=self.name,
        )

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
