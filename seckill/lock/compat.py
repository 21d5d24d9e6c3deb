"""redis-py's ``Lock`` interface on seckill's lock: swap it in with ``lock_class=``.

    lock = client.lock("resource", timeout=5, lock_class=RedisPyCompatibleLock)
    lock = aio_client.lock("resource", timeout=5, lock_class=AsyncRedisPyCompatibleLock)

Constructed and called exactly as ``redis.lock.Lock`` / ``redis.asyncio.lock.Lock`` (same
arguments, coerced the same way, the same ``local.token``, the same exceptions: ours subclass
redis-py's), with the key layout of redis-py (``GET name`` is the holder's token). Underneath
it is :class:`seckill.lock.Lock`: waiters queue FIFO and are handed the lock at release instead
of sleeping and retrying, every acquisition gets a fence (``lock.fence``), waits never share
the holder's connection, and a lock without ``timeout`` is not a lock that never expires: it
holds a ``DEFAULT_LEASE`` renewed by the watchdog while the lock object lives, so a crashed
holder frees it. The deliberate differences and why: docs/lock.md.
"""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace, TracebackType
from typing import Any

from redis import exceptions as redis_exceptions

from .aio import AsyncLock
from .errors import LockError, LockNotOwnedError, LockUnavailableError
from .keys import LockKeys, new_token
from .lock import Lock
from .protocol import seconds

log = logging.getLogger(__name__)

#: Lease of a lock created with ``timeout=None``, renewed every third of it while held.
DEFAULT_LEASE = 10.0


class RedisPyLockError(LockError, redis_exceptions.LockError):
    """Caught by ``except redis.exceptions.LockError`` and ``except seckill.lock.LockError``."""


class RedisPyLockNotOwnedError(LockNotOwnedError, redis_exceptions.LockNotOwnedError):
    """redis-py's LockNotOwnedError and ours: the lease was lost (expired, taken over)."""


class RedisPyLockUnavailableError(LockUnavailableError, redis_exceptions.ConnectionError):
    """Redis unreachable during a lock operation: redis-py's ConnectionError and ours."""


def _redis_py_error(exc: LockError) -> LockError:
    """Our error as the matching class that redis-py's callers catch."""
    if isinstance(exc, redis_exceptions.RedisError):
        return exc
    if isinstance(exc, LockNotOwnedError):
        kind: type[LockError] = RedisPyLockNotOwnedError
    elif isinstance(exc, LockUnavailableError):
        kind = RedisPyLockUnavailableError
    else:
        kind = RedisPyLockError
    translated = kind(str(exc), lock_name=exc.lock_name)
    translated.__cause__ = exc.__cause__
    return translated


class _Local(threading.local):
    """Per-thread holder state (redis-py's ``thread_local=True``), present in every thread."""

    token: bytes | None = None
    held: Any = None


class _Compat:
    """What both faces share: arguments, tokens, checks and errors (no I/O)."""

    core_class: type[Lock] | type[AsyncLock]
    #: Lease held (and renewed) by a lock created without ``timeout``.
    default_lease = DEFAULT_LEASE

    def __init__(
        self,
        redis: Any,
        name: str,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
        raise_on_release_error: bool = True,
    ) -> None:
        self.redis = redis
        self.name = name
        # redis-py: a false timeout (None, 0) means "no expiry"; here, a renewed lease.
        self.timeout = seconds(timeout, "timeout") if timeout else None
        self.sleep = seconds(sleep, "sleep")
        self.blocking = blocking
        self.blocking_timeout = (
            None if blocking_timeout is None else seconds(blocking_timeout, "blocking_timeout")
        )
        self.thread_local = bool(thread_local)
        self.raise_on_release_error = raise_on_release_error
        self.local = _Local() if self.thread_local else SimpleNamespace(token=None, held=None)
        self.keys = LockKeys.exact(name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} timeout={self.timeout}>"

    # -- shared steps --------------------------------------------------------------------------

    def _new_holder(self, token: Any, sleep: float | None) -> tuple[Any, bytes]:
        """A fresh core lock for one acquisition, and its token as bytes."""
        encode = self.redis.get_encoder().encode
        token = new_token().encode() if token is None else encode(token)
        poll = self.sleep if sleep is None else seconds(sleep, "sleep")
        core = self.core_class(
            self.redis,
            self.name,
            ttl=self.timeout or self.default_lease,
            watchdog=self.timeout is None,
            # How soon a waiter notices a holder that vanished without handing over (say, a
            # redis-py Lock on the same name during a migration): `sleep`, as redis-py's
            # waiters do, at most 1 s (a waiter's queue entry lives 2 polls + 1 s).
            poll_interval=min(max(poll, 0.01), 1.0),
            keys=self.keys,
        )
        return core, token

    def _wait_args(self, blocking: bool | None, blocking_timeout: float | None) -> tuple:
        if blocking is None:
            blocking = self.blocking
        if blocking_timeout is None:
            blocking_timeout = self.blocking_timeout
        else:
            blocking_timeout = seconds(blocking_timeout, "blocking_timeout")
        return bool(blocking), blocking_timeout

    def _won(self, core: Any, token: bytes) -> bool:
        self.local.token, self.local.held = token, core
        return True

    def _holder(self) -> Any:
        """This thread's core lock; for a token set by hand (``lock.local.token = token``, as
        redis-py's users do to release or extend from another process), one adopting it."""
        held = self.local.held
        if held is None or held.token != self.local.token:
            held, _ = self._new_holder(None, None)
            held.token, held.depth = self.local.token, 1
            self.local.held = held
        return held

    def _held(self, action: str, *, needs_timeout: bool = False) -> Any:
        if self.local.token is None:
            raise RedisPyLockError(f"Cannot {action} an unlocked lock", lock_name=self.name)
        if needs_timeout and self.timeout is None:
            raise RedisPyLockError(f"Cannot {action} a lock with no timeout", lock_name=self.name)
        return self._holder()

    def _releasing(self) -> Any:
        if self.local.token is None:
            raise RedisPyLockError(
                "Cannot release a lock that's not owned or is already unlocked.",
                lock_name=self.name,
            )
        return self._holder()

    def _forget(self) -> None:
        self.local.token, self.local.held = None, None

    def _not_acquired(self) -> RedisPyLockError:
        return RedisPyLockError(
            "Unable to acquire lock within the time specified", lock_name=self.name
        )

    def _release_failed(self) -> None:
        if self.raise_on_release_error:
            raise
        log.warning("Lock was unlocked or no longer owned when exiting context manager.")

    @staticmethod
    def _same(stored: Any, token: bytes | None) -> bool:
        if isinstance(stored, str):
            stored = stored.encode()
        return token is not None and stored == token

    # -- what seckill's lock adds --------------------------------------------------------------

    @property
    def fence(self) -> int | None:
        """Fencing token of this thread's current acquisition (strictly increasing per name)."""
        held = self.local.held
        return None if held is None else held.fence

    @property
    def lease_lost(self) -> bool:
        """True once the watchdog found this thread's lease gone (``timeout=None`` locks)."""
        held = self.local.held
        return held is not None and held.lease_lost


class RedisPyCompatibleLock(_Compat):
    """``redis.lock.Lock``'s interface (sync); see the module docstring."""

    core_class = Lock

    def __enter__(self) -> RedisPyCompatibleLock:
        if self.acquire():
            return self
        raise self._not_acquired()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.release()
        except redis_exceptions.LockError:
            self._release_failed()

    def acquire(
        self,
        sleep: float | None = None,
        blocking: bool | None = None,
        blocking_timeout: float | None = None,
        token: str | bytes | None = None,
    ) -> bool:
        """True once acquired; False when not (non-blocking, or ``blocking_timeout`` passed).
        ``token``: the holder's token (default: a fresh unique one)."""
        blocking, wait = self._wait_args(blocking, blocking_timeout)
        core, token = self._new_holder(token, sleep)
        try:
            if not core.acquire(blocking=blocking, timeout=wait, token=token):
                return False
        except LockError as exc:
            raise _redis_py_error(exc) from None
        return self._won(core, token)

    def locked(self) -> bool:
        """True if anyone holds the lock."""
        return self.redis.get(self.name) is not None

    def owned(self) -> bool:
        """True if this thread's token is the lock's current value."""
        return self._same(self.redis.get(self.name), self.local.token)

    def release(self) -> None:
        """Release; LockError if not held here, LockNotOwnedError if the lease was lost."""
        held = self._releasing()
        self._forget()
        try:
            held.release()
        except LockError as exc:
            raise _redis_py_error(exc) from None

    def extend(self, additional_time: float, replace_ttl: bool = False) -> bool:
        """Add ``additional_time`` seconds to the lease, or set it (``replace_ttl=True``)."""
        held = self._held("extend", needs_timeout=True)
        try:
            return held.extend(additional_time, replace_ttl=replace_ttl)
        except LockError as exc:
            raise _redis_py_error(exc) from None

    def reacquire(self) -> bool:
        """Reset the lease to ``timeout``."""
        held = self._held("reacquire", needs_timeout=True)
        try:
            return held.extend()
        except LockError as exc:
            raise _redis_py_error(exc) from None


class AsyncRedisPyCompatibleLock(_Compat):
    """``redis.asyncio.lock.Lock``'s interface; see the module docstring."""

    core_class = AsyncLock

    async def __aenter__(self) -> AsyncRedisPyCompatibleLock:
        if await self.acquire():
            return self
        raise self._not_acquired()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self.release()
        except redis_exceptions.LockError:
            self._release_failed()

    async def acquire(
        self,
        blocking: bool | None = None,
        blocking_timeout: float | None = None,
        token: str | bytes | None = None,
    ) -> bool:
        blocking, wait = self._wait_args(blocking, blocking_timeout)
        core, token = self._new_holder(token, None)
        try:
            if not await core.acquire(blocking=blocking, timeout=wait, token=token):
                return False
        except LockError as exc:
            raise _redis_py_error(exc) from None
        return self._won(core, token)

    async def locked(self) -> bool:
        return await self.redis.get(self.name) is not None

    async def owned(self) -> bool:
        return self._same(await self.redis.get(self.name), self.local.token)

    async def release(self) -> None:
        # The token is forgotten only once the release ran: a release cancelled before it
        # reached Redis can be retried (redis-py's issue #3847).
        held = self._releasing()
        try:
            await held.release()
        except LockError as exc:
            self._forget()
            raise _redis_py_error(exc) from None
        self._forget()

    async def extend(self, additional_time: float, replace_ttl: bool = False) -> bool:
        held = self._held("extend", needs_timeout=True)
        try:
            return await held.extend(additional_time, replace_ttl=replace_ttl)
        except LockError as exc:
            raise _redis_py_error(exc) from None

    async def reacquire(self) -> bool:
        held = self._held("reacquire", needs_timeout=True)
        try:
            return await held.extend()
        except LockError as exc:
            raise _redis_py_error(exc) from None
