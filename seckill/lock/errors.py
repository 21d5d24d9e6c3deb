"""Exceptions of the lock library: one base class so callers can catch everything lock-related."""

from __future__ import annotations


class LockError(Exception):
    """Base class: misuse of a lock, or a lock operation that could not be completed."""

    def __init__(self, message: str, *, lock_name: str | None = None) -> None:
        super().__init__(message)
        self.lock_name = lock_name


class LockNotOwnedError(LockError):
    """Release/extend of a lock this holder no longer owns (lease expired, stolen, or released).

    Raised instead of passing silently: the critical section may have overlapped with another
    holder, and the caller must know (e.g. to roll back, or to rely on the fencing token).
    """


class LockTimeout(LockError):
    """A blocking acquire in a ``with`` block did not get the lock within ``blocking_timeout``."""

    @classmethod
    def waiting_for(cls, lock: object) -> LockTimeout:
        name, timeout = lock.name, lock.blocking_timeout  # type: ignore[attr-defined]
        return cls(f"{type(lock).__name__} {name!r} not acquired within {timeout}s", lock_name=name)


class LockUnavailableError(LockError):
    """Redis could not be reached (or timed out) during a lock operation; state is unknown.

    The original ``redis.exceptions.ConnectionError``/``TimeoutError`` is chained as
    ``__cause__``. After this error during release, assume the lease ends by its TTL.
    """
