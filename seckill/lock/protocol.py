"""The lock protocol, written once as generators that *yield* Redis operations ("sans-IO").

The sync :class:`~seckill.lock.lock.Lock` and the asyncio
:class:`~seckill.lock.aio.AsyncLock` differ only in how they execute an operation (call vs
await), so the logic - ownership bookkeeping, the wait loop, error mapping - lives here once.

Waiting protocol (why a contended acquisition costs 2-3 round trips, not hundreds):
1. ``ACQUIRE`` either takes the lock or appends the caller to a FIFO queue (one round trip).
2. The waiter blocks in ``BLPOP`` on its own wake list. When the last acquisition of this
   name had to wait, steps 1 and 2 go out together in one pipeline (``AcquireWait``).
3. ``RELEASE`` hands the lock *directly* to the first live waiter (sets the key to the waiter's
   token, INCRs the fence, pushes the fence to the waiter's wake list). The woken waiter already
   owns the lock - no race, no second attempt - which makes hand-off FIFO-fair.
4. If nobody releases (holder crashed, lease ran out), the waiter re-runs ``ACQUIRE`` after a
   bounded poll (at most ``poll_interval``, sooner if the holder's lease ends sooner).

``fair=False`` trades the FIFO guarantee for barging: release frees the lock and only *wakes*
the first waiter (a 0 in its wake list), which then races newcomers with another ``ACQUIRE``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator
from typing import Any

from .errors import LockError, LockNotOwnedError
from .keys import LockKeys, new_token
from .scripts import ACQUIRE, CANCEL, EXTEND, REENTER, RELEASE, Script

_monotonic = time.monotonic


class Eval:
    """Run ``script`` with KEYS ``keys`` and ARGV ``args``."""

    __slots__ = ("script", "keys", "args")

    def __init__(self, script: Script, keys: tuple[str, ...], args: tuple[Any, ...]) -> None:
        self.script, self.keys, self.args = script, keys, args

    def __repr__(self) -> str:
        return f"{self.script.name} script"


class BlockPop:
    """``BLPOP key [also...] timeout``: wait for a hand-off (or for one of the caller's ``also``
    keys). ``deadline`` (monotonic): when this wait is the last one before the caller's
    timeout, the driver stops reading at that moment instead of trusting the server's timer
    (it fires up to 1/hz = 100 ms late)."""

    __slots__ = ("key", "timeout", "deadline", "also")

    def __init__(
        self,
        key: str | bytes,
        timeout: float,
        deadline: float | None = None,
        also: tuple[str | bytes, ...] = (),
    ) -> None:
        self.key, self.timeout, self.deadline, self.also = key, timeout, deadline, also

    @property
    def keys(self) -> tuple[str | bytes, ...]:
        return (self.key, *self.also)

    def __repr__(self) -> str:
        return "BLPOP"


class AcquireWait:
    """``ACQUIRE`` and, if that did not win, ``BLPOP`` on the wake list: result (acquire's
    integer, BLPOP's reply or None). A driver may send both in one pipeline (``ACQUIRE`` then
    runs with selfwake=1, so a win also feeds the BLPOP); otherwise it runs them in turn."""

    __slots__ = ("keys", "args", "wake", "timeout", "deadline", "also")

    def __init__(
        self,
        keys: tuple[str, ...],
        args: tuple[Any, ...],
        wake: str | bytes,
        timeout: float,
        deadline: float | None = None,
        also: tuple[str | bytes, ...] = (),
    ) -> None:
        self.keys, self.args, self.wake, self.timeout = keys, args, wake, timeout
        self.deadline, self.also = deadline, also

    def block_pop(self) -> BlockPop:
        """The wait half on its own (drivers that cannot pipeline the two)."""
        return BlockPop(self.wake, self.timeout, self.deadline, self.also)

    def __repr__(self) -> str:
        return "acquire script + BLPOP"


class Get:
    """``GET key``."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __repr__(self) -> str:
        return "GET"


Op = Eval | AcquireWait | BlockPop | Get

# Per lock name: did the last acquisition in this process have to wait? If so the next one
# sends ACQUIRE and BLPOP together (one round trip) instead of ACQUIRE, then BLPOP.
_contended: dict[str, bool] = {}


def _note_contention(key: str, waited: bool) -> None:
    if _contended.get(key) != waited:
        if len(_contended) > 4096:
            _contended.clear()
        _contended[key] = waited


Steps = Generator[Op, Any, Any]


def seconds(value: Any, what: str) -> float:
    """A duration in seconds from anything ``float()`` takes ("5", 2, Decimal): the coercion
    redis-py's callers rely on; a clear ValueError for the rest (and for NaN/inf)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number of seconds, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    return number


def seconds_to_ms(value: Any, what: str) -> int:
    """Convert a positive duration in seconds (the public unit) to whole milliseconds (>= 1)."""
    number = None if value is None else seconds(value, what)
    if number is None or number <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
    return max(1, int(number * 1000))


def as_bytes(value: Any) -> bytes | None:
    """A token or key value as bytes (decoded clients reply str, callers pass str or bytes)."""
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


class LockCore:
    """State and protocol of one lock holder; subclasses supply the I/O driver.

    One instance = one holder. Create one per thread/task (it is cheap); do not share an
    instance between threads - the token it holds *is* the holder's identity.
    """

    def __init__(
        self,
        name: str,
        *,
        ttl: float = 10.0,
        reentrant: bool = False,
        fair: bool = True,
        blocking_timeout: float | None = None,
        poll_interval: float = 1.0,
        on_lost: Callable[[Any], None] | None = None,
        keys: LockKeys | None = None,
    ) -> None:
        self.name = name
        self.fair = fair
        self.keys = LockKeys.for_name(name) if keys is None else keys
        self.key = self.keys.lock
        self.ttl_ms = seconds_to_ms(ttl, "ttl")
        self.ttl = ttl if isinstance(ttl, int | float) else self.ttl_ms / 1000
        self.reentrant = reentrant
        self.blocking_timeout = blocking_timeout
        self.poll_interval = poll_interval
        self.on_lost = on_lost
        #: Fencing token of the current (or last) acquisition; strictly increasing per name.
        self.fence: int | None = None
        self.token: str | bytes | None = None
        self.depth = 0
        self.lease_lost = False
        #: Monotonic time by which the current lease certainly began (the winning command was
        #: sent, or the hand-off arrived): the watchdog counts the lease from here.
        self.leased_at = 0.0
        # Set by the driver when it sends an operation.
        self._sent_at = 0.0
        # Longest single BLPOP: below the client's socket timeout, if it has one.
        self._max_block: float | None = None
        # Liveness lease of a queued waiter: a crashed waiter is skipped after this.
        self._waiter_lease_ms = int((2 * poll_interval + 1.0) * 1000)
        # Why this client cannot wait (a pool of one connection), if it cannot.
        self._waits_refused: ValueError | None = None
        #: (key, value) popped from one of ``acquire(wake_on=...)``'s keys by the last
        #: acquisition, or None: that acquisition ended because the caller's key fired.
        self.woken_by: tuple[Any, Any] | None = None

    def __repr__(self) -> str:
        state = f"held, fence={self.fence}" if self.token else "not held"
        return f"<{type(self).__name__} {self.key!r} ttl={self.ttl} {state}>"

    # -- protocol steps ------------------------------------------------------------------------

    def _won(self, token: str | bytes, fence: int, handed: bool = False) -> bool:
        self.token, self.fence, self.depth, self.lease_lost = token, int(fence), 1, False
        self.leased_at = _monotonic() if handed else self._sent_at
        return True

    def _forget(self) -> None:
        self.token, self.depth = None, 0

    def _acquire_steps(
        self,
        blocking: bool,
        timeout: float | None,
        token: str | bytes | None = None,
        wake_on: tuple[str | bytes, ...] = (),
    ) -> Steps:
        self.woken_by = None
        if self.token is not None:
            if not self.reentrant:
                raise LockError(
                    f"lock {self.name!r} is already held by this Lock object (not reentrant); "
                    "use one Lock object per holder, or reentrant=True",
                    lock_name=self.name,
                )
            depth = yield Eval(REENTER, self.keys.script_keys, (self.token, self.ttl_ms))
            if not depth:
                raise LockNotOwnedError(
                    f"cannot re-enter lock {self.name!r}: its lease was lost", lock_name=self.name
                )
            self.depth = int(depth)
            return True
        if timeout is not None:
            timeout = seconds(timeout, "timeout")
            if timeout < 0:
                raise ValueError("timeout must be >= 0 or None")
        if token is None:
            token = new_token()
        enqueue = 1 if blocking and timeout != 0 else 0
        if enqueue and self._waits_refused is not None:
            raise self._waits_refused
        keys = self.keys.script_keys
        args = (token, self.ttl_ms, enqueue, self._waiter_lease_ms, 1 if self.fair else 0, 0)
        deadline = None if timeout is None else _monotonic() + timeout
        wake = self.keys.wake(token)
        popped: Any = None
        just_waited = False  # `popped` holds a fresh BLPOP reply (or None: it timed out)
        try:
            if enqueue and _contended.get(self.key):
                wait = self._wait_chunk(self.poll_interval, deadline)
                result, popped = yield AcquireWait(
                    keys, args[:5], wake, wait, self._chunk_deadline(wait, deadline), wake_on
                )
                just_waited = result < 0
            else:
                result = yield Eval(ACQUIRE, keys, args)
            if result > 0:
                _note_contention(self.key, False)
                self._note_woken(popped, wake)
                return self._won(token, result)
            if not enqueue:
                return False
            _note_contention(self.key, True)
            while True:
                if just_waited:
                    if self._note_woken(popped, wake):
                        # The caller's own key fired first: leave the queue (keeping a lock
                        # handed to us meanwhile: the caller is told it holds it).
                        fence = yield Eval(CANCEL, keys, (token, self.ttl_ms))
                        return self._won(token, fence) if fence > 0 else False
                    if popped is not None and int(popped[1]) > 0:
                        # handed over: already ours
                        return self._won(token, int(popped[1]), handed=True)
                    # BLPOP timed out, or (unfair mode) we were woken to race for the lock.
                    # Re-poll: takes the lock if it is free, and renews our queue entry.
                    result = yield Eval(ACQUIRE, keys, args)
                    if result > 0:
                        return self._won(token, result)
                wait = self.poll_interval
                if result < -1:  # the holder's lease ends in (-result - 1) ms: re-poll then
                    wait = min(wait, (-result - 1) / 1000 + 0.005)
                if deadline is not None and deadline <= _monotonic():
                    fence = yield Eval(CANCEL, keys, (token, self.ttl_ms))
                    return self._won(token, fence) if fence > 0 else False
                chunk = self._wait_chunk(wait, deadline)
                popped = yield BlockPop(wake, chunk, self._chunk_deadline(chunk, deadline), wake_on)
                just_waited = True
        except GeneratorExit:  # abandoned by its driver: nothing may be yielded any more
            raise
        except BaseException:
            # Redis failed, or the caller gave up (task cancelled, KeyboardInterrupt) while we
            # were queued: leave the queue, and pass on a lock handed to us meanwhile - else
            # it would sit with a holder that does not know it, for a whole TTL. If Redis is
            # down, our queue entry's liveness lease makes releasers skip it soon.
            if enqueue:
                with contextlib.suppress(LockError):
                    if (yield Eval(CANCEL, keys, (token, self.ttl_ms))) > 0:
                        yield Eval(RELEASE, keys, (token, 0, args[4]))
            raise

    def _note_woken(self, popped: Any, wake: str | bytes) -> bool:
        """True (and :attr:`woken_by` set) if a BLPOP reply came from a ``wake_on`` key."""
        if popped is None or as_bytes(popped[0]) == as_bytes(wake):
            return False
        self.woken_by = (popped[0], popped[1])
        return True

    def _wait_chunk(self, wait: float, deadline: float | None) -> float:
        """One BLPOP's timeout: ``wait``, cut to the deadline and the client's socket timeout."""
        if deadline is not None:
            wait = min(wait, deadline - _monotonic())
        if self._max_block is not None:
            wait = min(wait, self._max_block)
        return max(wait, 0.01)

    @staticmethod
    def _chunk_deadline(chunk: float, deadline: float | None) -> float | None:
        """The caller's deadline, if this wait runs up to it (else the server's timer is fine:
        a late poll only delays noticing a dead holder)."""
        if deadline is not None and _monotonic() + chunk >= deadline - 0.001:
            return deadline
        return None

    def _release_steps(self) -> Steps:
        token = self.token
        if token is None:
            raise LockNotOwnedError(
                f"cannot release lock {self.name!r}: not acquired (or already released)",
                lock_name=self.name,
            )
        try:
            args = (token, 1 if self.reentrant else 0, 1 if self.fair else 0)
            result = yield Eval(RELEASE, self.keys.script_keys, args)
        except LockError:
            self._forget()  # state unknown; the lease ends by its TTL at the latest
            raise
        if result == 2:
            self.depth -= 1
            return
        self._forget()
        if result == 0:
            raise LockNotOwnedError(
                f"lock {self.name!r} was not owned at release: its lease expired (or it was "
                f"taken over) before release; fence {self.fence} is stale",
                lock_name=self.name,
            )

    def _extend_steps(self, additional: float | None, replace_ttl: bool = False) -> Steps:
        if self.token is None:
            raise LockNotOwnedError(
                f"cannot extend lock {self.name!r}: not acquired", lock_name=self.name
            )
        if additional is None:
            args = (self.token, self.ttl_ms, 0)
        else:
            args = (self.token, seconds_to_ms(additional, "additional"), 0 if replace_ttl else 1)
        if not (yield Eval(EXTEND, self.keys.script_keys, args)):
            raise LockNotOwnedError(
                f"cannot extend lock {self.name!r}: its lease was lost", lock_name=self.name
            )
        return True

    def _renew_steps(self, token: str) -> Steps:
        """One watchdog renewal: reset the lease to ``ttl`` only if ``token`` still owns it."""
        return bool((yield Eval(EXTEND, self.keys.script_keys, (token, self.ttl_ms, 0))))

    def _owned_steps(self) -> Steps:
        if self.token is None:
            return False
        return as_bytes((yield Get(self.key))) == as_bytes(self.token)

    def _locked_steps(self) -> Steps:
        return (yield Get(self.key)) is not None

    def _lost(self) -> None:
        """Called by the watchdog when the lease is gone: flag it, tell the holder."""
        self.lease_lost = True
        if self.on_lost is not None:
            self.on_lost(self)
