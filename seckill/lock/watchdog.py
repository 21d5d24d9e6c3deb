"""Lease renewal: one shared daemon thread per process renews every held lease while owned.

Why not the usual tutorial watchdog: it renews with a plain EXPIRE (keeping alive a lock that
someone else now holds) and is stopped by killing the thread. Here every renewal is the
compare-and-extend script, a failed comparison ends renewal of that lease and reports the loss,
and stopping is a flag set under a lock (never killing a thread).

Why one thread and not one per acquisition: starting a thread costs hundreds of microseconds to
milliseconds of GIL churn on a busy machine, paid inside the holder's critical section. Here an
acquisition pushes onto a heap and a release flags its entry (O(log n) each, a few µs); neither
starts or joins a thread, and only an acquisition due before the thread's next wake-up wakes it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable

from .errors import LockUnavailableError

log = logging.getLogger(__name__)

QUEUED, RUNNING, CANCELLED, LOST = "queued", "running", "cancelled", "lost"


def renewal_verdict(renewed: bool | None, last_ok: float, lease: float, now: float) -> bool:
    """True when the lease must be considered lost.

    ``renewed`` is True (extended), False (not the owner any more) or None (Redis unreachable).
    While Redis is unreachable the lease may still be valid; after a whole ``lease`` without a
    successful renewal it certainly is not.
    """
    if renewed is False:
        return True
    return renewed is None and now - last_ok >= lease


class Renewal:
    """One registered lease: what to call, how often, and where it stands.

    ``state`` is ``queued`` (waiting for its due time), ``running`` (a renewal in flight),
    ``cancelled`` (released by its holder) or ``lost`` (reported through ``on_lost``).
    """

    __slots__ = (
        "renew",
        "interval",
        "lease",
        "on_lost",
        "name",
        "due",
        "last_ok",
        "state",
        "_owner",
        "_generation",
    )

    def __init__(
        self,
        owner: Renewer,
        renew: Callable[[], bool],
        interval: float,
        lease: float,
        on_lost: Callable[[], None],
        name: str,
        now: float,
    ) -> None:
        self.renew = renew
        self.interval = interval
        self.lease = lease
        self.on_lost = on_lost
        self.name = name
        self.due = now + interval
        self.last_ok = now
        self.state = QUEUED
        self._owner = owner
        self._generation = owner._generation

    def __repr__(self) -> str:
        return f"<Renewal {self.name!r} {self.state} due={self.due:.3f}>"

    @property
    def active(self) -> bool:
        """True while the renewer still renews this lease."""
        return self.state in (QUEUED, RUNNING)

    def cancel(self) -> None:
        """Stop renewing (the holder releases). Cheap: no thread is woken or joined."""
        self._owner.cancel(self)


class Renewer:
    """Renews registered leases from one lazily started daemon thread, earliest due first.

    Each lease is renewed ``interval`` after its previous renewal attempt ended. A False reply
    (the token is gone) ends renewal of that lease and calls its ``on_lost``; an unreachable
    Redis is retried, and reported lost only once a whole ``lease`` passed without a success
    (:func:`renewal_verdict`). Renewals run one at a time in due order, so a slow one delays the
    others but never starves them: when it ends, it goes behind every lease already due. Give
    clients a ``socket_timeout`` well below the TTL, since a hung call stalls every renewal in
    the process, and keep ``on_lost`` short (it runs on this thread).

    After ``fork()`` the child starts with no registrations and no thread: leases held at fork
    belong to the parent, which keeps renewing them.
    """

    def __init__(self, name: str = "lock-renewer") -> None:
        self.name = name
        self._generation = 0
        self._reset()
        _renewers.add(self)

    def _reset(self) -> None:
        # A new Condition: after fork the old one may be held by a thread that does not exist.
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Renewal]] = []
        self._seq = itertools.count()
        self._live = 0  # registrations queued or running
        self._stale = 0  # cancelled entries still in the heap
        self._thread: threading.Thread | None = None
        # When the thread's current wait ends: register() wakes it only for an earlier due
        # time. -inf while it is awake (it looks at the heap before sleeping again).
        self._wake_at = -math.inf
        self._generation += 1

    # -- holder side ---------------------------------------------------------------------------

    def register(
        self,
        renew: Callable[[], bool],
        *,
        interval: float,
        lease: float,
        on_lost: Callable[[], None],
        name: str = "",
    ) -> Renewal:
        """Renew with ``renew()`` every ``interval`` s until cancelled or the lease is lost."""
        with self._cond:
            renewal = Renewal(self, renew, interval, lease, on_lost, name, time.monotonic())
            heapq.heappush(self._heap, (renewal.due, next(self._seq), renewal))
            self._live += 1
            if self._thread is None:
                self._start_thread()
            elif renewal.due < self._wake_at:
                self._cond.notify()
        return renewal

    def cancel(self, renewal: Renewal) -> None:
        """Stop renewing ``renewal``; a renewal in flight finishes but reports nothing."""
        with self._cond:
            if renewal._generation != self._generation or not renewal.active:
                return  # registered before a fork, already cancelled, or lost
            queued = renewal.state == QUEUED
            renewal.state = CANCELLED
            self._live -= 1
            if queued:
                self._stale += 1
                self._prune()

    def __len__(self) -> int:
        """Leases being renewed (queued or in flight)."""
        return self._live

    @property
    def thread(self) -> threading.Thread | None:
        """The renewal thread, if started in this process."""
        return self._thread

    # -- renewal thread ------------------------------------------------------------------------

    def _prune(self) -> None:
        """Drop cancelled entries from the top of the heap, and rebuild the heap once most of
        it is cancelled entries buried below live ones (amortised O(1) per cancel)."""
        heap = self._heap
        while heap and heap[0][2].state == CANCELLED:
            heapq.heappop(heap)
            self._stale -= 1
        if self._stale > 64 and self._stale * 2 > len(heap):
            self._heap = [entry for entry in heap if entry[2].state == QUEUED]
            heapq.heapify(self._heap)
            self._stale = 0

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _next_due(self) -> Renewal:
        """Wait (holding the condition) for the earliest due lease, and mark it running."""
        while True:
            self._prune()
            now = time.monotonic()
            if self._heap and self._heap[0][0] <= now:
                renewal = heapq.heappop(self._heap)[2]
                renewal.state = RUNNING
                self._wake_at = -math.inf
                return renewal
            timeout = self._heap[0][0] - now if self._heap else None
            self._wake_at = math.inf if timeout is None else now + timeout
            self._cond.wait(timeout)
            self._wake_at = -math.inf

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    renewal = self._next_due()
                self._renew_once(renewal)
        finally:  # not expected; if it happens, the next register() starts a new thread
            with self._cond:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _renew_once(self, renewal: Renewal) -> None:
        try:
            renewed: bool | None = bool(renewal.renew())
        except LockUnavailableError as exc:
            log.warning("lock renewal of %r failed, will retry: %s", renewal.name, exc)
            renewed = None
        except Exception:  # e.g. READONLY/OOM replies: unknown, like unreachable
            log.exception("lock renewal of %r failed, will retry", renewal.name)
            renewed = None
        now = time.monotonic()
        with self._cond:
            if renewal.state != RUNNING:
                return  # cancelled meanwhile: the holder released, nothing to report
            if renewed:
                renewal.last_ok = now
            elif renewal_verdict(renewed, renewal.last_ok, renewal.lease, now):
                renewal.state = LOST
                self._live -= 1
            if renewal.state == RUNNING:  # still ours, or Redis unreachable for now: retry
                renewal.state = QUEUED
                renewal.due = now + renewal.interval
                heapq.heappush(self._heap, (renewal.due, next(self._seq), renewal))
                return
        log.warning("lock renewal: lease of %r lost, stopping its renewal", renewal.name)
        try:
            renewal.on_lost()
        except Exception:  # the holder's callback must not kill the thread, nor fail silently
            log.exception("lock renewal: on_lost callback of %r failed", renewal.name)


_renewers: weakref.WeakSet[Renewer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for renewer in list(_renewers):
        renewer._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: The process-wide renewer used by Lock and Redlock.
RENEWER = Renewer()
