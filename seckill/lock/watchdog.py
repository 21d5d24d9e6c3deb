"""Lease renewal: one shared daemon thread per process renews every held lease while owned.

Why not the usual tutorial watchdog: it renews with a plain EXPIRE (keeping alive a lock that
someone else now holds) and is stopped by killing the thread. Here every renewal is the
compare-and-extend script, a failed comparison ends renewal of that lease and reports the loss,
and stopping is a flag set under a lock (never killing a thread).

Why a few shared threads and not one per acquisition: starting a thread costs hundreds of
microseconds to milliseconds of GIL churn on a busy machine, paid inside the holder's critical
section. Here an acquisition pushes onto a heap and a release flags its entry (O(log n) each, a
few µs); neither starts or joins a thread, and only an acquisition due before the scheduler's
next wake-up wakes it. The scheduler does no I/O, so a renewal stuck in a call cannot keep it
from reporting that lease lost when the lease ends.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

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
    ``cancelled`` (released by its holder, or the holder object is gone) or ``lost``
    (reported through ``on_lost``). ``valid_until`` is when the lease certainly ends unless a
    renewal sent before then succeeds: the last successful renewal's send time plus ``lease``.
    """

    __slots__ = (
        "renew",
        "interval",
        "lease",
        "on_lost",
        "name",
        "due",
        "last_ok",
        "valid_until",
        "state",
        "_owner",
        "_ref",
        "_generation",
        "_epoch",
    )

    def __init__(
        self,
        owner: Renewer,
        renew: Callable[..., bool],
        interval: float,
        lease: float,
        on_lost: Callable[..., None],
        name: str,
        now: float,
        ref: weakref.ref[Any] | None,
        leased_at: float,
    ) -> None:
        self.renew = renew
        self.interval = interval
        self.lease = lease
        self.on_lost = on_lost
        self.name = name
        self.due = now + interval
        self.last_ok = leased_at
        self.valid_until = leased_at + lease
        self.state = QUEUED
        self._owner = owner
        self._ref = ref
        self._generation = owner._generation
        self._epoch = 0

    def __repr__(self) -> str:
        return f"<Renewal {self.name!r} {self.state} due={self.due:.3f}>"

    @property
    def active(self) -> bool:
        """True while the renewer still renews this lease."""
        return self.state in (QUEUED, RUNNING)

    def cancel(self) -> None:
        """Stop renewing (the holder releases). Cheap: no thread is woken or joined."""
        self._owner.cancel(self)

    def _call(self, fn: Callable[..., Any]) -> Any:
        """Call ``renew``/``on_lost`` with the holder (if registered with one); None if gone."""
        if self._ref is None:
            return fn()
        holder = self._ref()
        if holder is None:
            raise _HolderGone
        return fn(holder)


class _HolderGone(Exception):
    """The lock object was garbage-collected: stop renewing, let the lease run out."""


class Renewer:
    """Renews registered leases, earliest due first, from lazily started daemon threads.

    One scheduler thread decides what is due and never waits for Redis; up to ``workers``
    I/O threads send the renewals. A True reply extends the lease's ``valid_until``; a False
    reply (the token is gone) ends renewal of that lease and calls its ``on_lost``; an
    unreachable Redis is retried. And a renewal still unanswered when the lease would end -
    a hung server, a client connection busy with something else - is reported lost *then*,
    by the scheduler, not whenever the call returns (:func:`renewal_verdict` for the replies).
    Keep ``on_lost`` short: it runs on one of these threads.

    Registered with ``owner=``, a lease is renewed only while that object lives: the renewer
    keeps a weak reference, calls ``renew(owner)`` / ``on_lost(owner)``, and drops a lease
    whose owner was garbage-collected without releasing (its lease then runs out by TTL).

    After ``fork()`` the child starts with no registrations and no threads: leases held at
    fork belong to the parent, which keeps renewing them.
    """

    def __init__(self, name: str = "lock-renewer", workers: int = 4) -> None:
        self.name = name
        self.max_workers = workers
        self._generation = 0
        self._reset()
        _renewers.add(self)

    def _reset(self) -> None:
        # A new Condition: after fork the old one may be held by a thread that does not exist.
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Renewal, int]] = []
        self._seq = itertools.count()
        self._live = 0  # registrations queued or running
        self._thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[Renewal] = queue.SimpleQueue()
        self._workers = 0
        self._idle = 0
        # When the thread's current wait ends: register() wakes it only for an earlier due
        # time. -inf while it is awake (it looks at the heap before sleeping again).
        self._wake_at = -math.inf
        self._generation += 1

    # -- holder side ---------------------------------------------------------------------------

    def register(
        self,
        renew: Callable[..., bool],
        *,
        interval: float,
        lease: float,
        on_lost: Callable[..., None],
        name: str = "",
        owner: Any = None,
        leased_at: float | None = None,
    ) -> Renewal:
        """Renew with ``renew()`` every ``interval`` s until cancelled or the lease is lost.

        ``leased_at``: monotonic time the lease certainly began (default: now).
        """
        ref = None if owner is None else weakref.ref(owner)
        with self._cond:
            now = time.monotonic()
            start = now if leased_at is None else leased_at
            renewal = Renewal(self, renew, interval, lease, on_lost, name, now, ref, start)
            self._live += 1
            self._schedule(renewal)
            if self._thread is None:
                self._start_thread()
        return renewal

    def cancel(self, renewal: Renewal) -> None:
        """Stop renewing ``renewal``; a renewal in flight finishes but reports nothing."""
        with self._cond:
            self._drop(renewal, CANCELLED)

    def __len__(self) -> int:
        """Leases being renewed (queued or in flight)."""
        return self._live

    @property
    def thread(self) -> threading.Thread | None:
        """The scheduler thread, if started in this process."""
        return self._thread

    # -- bookkeeping (holding the condition) ---------------------------------------------------

    def _drop(self, renewal: Renewal, state: str) -> bool:
        if renewal._generation != self._generation or not renewal.active:
            return False  # registered before a fork, already cancelled, or lost
        renewal.state = state
        renewal._epoch += 1  # its heap entries are stale now
        self._live -= 1
        return True

    def _schedule(self, renewal: Renewal) -> None:
        """Push the renewal's next event: its due time (queued: no later than the lease's
        end) or the lease's end (running)."""
        renewal._epoch += 1
        when = renewal.valid_until
        if renewal.state == QUEUED:
            when = min(renewal.due, when)
        heapq.heappush(self._heap, (when, next(self._seq), renewal, renewal._epoch))
        if when < self._wake_at:
            self._cond.notify()
        if len(self._heap) > 64 and len(self._heap) > 2 * self._live:
            self._heap[:] = [entry for entry in self._heap if entry[3] == entry[2]._epoch]
            heapq.heapify(self._heap)  # in place: the scheduler may hold a reference

    # -- scheduler thread ----------------------------------------------------------------------

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _next_event(self) -> tuple[str, Renewal]:
        """Wait (holding the condition) for the next due renewal or lease end."""
        heap = self._heap
        while True:
            while heap and heap[0][3] != heap[0][2]._epoch:
                heapq.heappop(heap)  # stale: rescheduled, cancelled or lost since
            now = time.monotonic()
            if heap and heap[0][0] <= now:
                renewal = heapq.heappop(heap)[2]
                self._wake_at = -math.inf
                if now >= renewal.valid_until:
                    self._drop(renewal, LOST)  # no renewal answered in time
                    return "lost", renewal
                renewal.state = RUNNING
                self._schedule(renewal)  # its lease end, should the call not come back
                return "renew", renewal
            timeout = heap[0][0] - now if heap else None
            self._wake_at = math.inf if timeout is None else now + timeout
            self._cond.wait(timeout)
            self._wake_at = -math.inf

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    kind, renewal = self._next_event()
                    if kind == "renew" and self._idle == 0 and self._workers < self.max_workers:
                        self._start_worker()
                if kind == "renew":
                    self._jobs.put(renewal)
                else:
                    self._report_lost(renewal)
        finally:  # not expected; if it happens, the next register() starts a new thread
            with self._cond:
                if self._thread is threading.current_thread():
                    self._thread = None

    # -- I/O workers ---------------------------------------------------------------------------

    def _start_worker(self) -> None:
        self._workers += 1
        self._idle += 1
        name = f"{self.name}-io-{self._workers}"
        threading.Thread(target=self._work, args=(self._jobs,), name=name, daemon=True).start()

    def _work(self, jobs: queue.SimpleQueue[Renewal]) -> None:
        while True:
            renewal = jobs.get()
            with self._cond:
                self._idle -= 1
            try:
                self._renew_once(renewal)
            finally:
                with self._cond:
                    self._idle += 1

    def _renew_once(self, renewal: Renewal) -> None:
        sent_at = time.monotonic()
        try:
            renewed: bool | None = bool(renewal._call(renewal.renew))
        except _HolderGone:
            with self._cond:
                self._drop(renewal, CANCELLED)
            return
        except LockUnavailableError as exc:
            log.warning("lock renewal of %r failed, will retry: %s", renewal.name, exc)
            renewed = None
        except Exception:  # e.g. READONLY/OOM replies: unknown, like unreachable
            log.exception("lock renewal of %r failed, will retry", renewal.name)
            renewed = None
        now = time.monotonic()
        with self._cond:
            if renewal.state != RUNNING:
                return  # cancelled meanwhile, or already reported lost at its lease's end
            if renewed:
                renewal.last_ok = sent_at
                renewal.valid_until = sent_at + renewal.lease
            if renewal_verdict(renewed, renewal.last_ok, renewal.lease, now):
                self._drop(renewal, LOST)
            else:  # still ours, or Redis unreachable for now: retry
                renewal.state = QUEUED
                renewal.due = now + renewal.interval
                self._schedule(renewal)
                return
        self._report_lost(renewal)

    def _report_lost(self, renewal: Renewal) -> None:
        log.warning("lock renewal: lease of %r lost, stopping its renewal", renewal.name)
        try:
            renewal._call(renewal.on_lost)
        except _HolderGone:
            pass
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
