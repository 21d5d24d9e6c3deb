"""Thread-safe snowflake generator: 64-bit, time-ordered ids, unique per (ms, worker, sequence).

Uniqueness rests on three rules, all enforced under one lock:

* the (millisecond, sequence) pair only ever moves forward: when the 4,096 sequence numbers of a
  millisecond are used up, the generator waits for the next millisecond;
* if the wall clock reads *earlier* than the last millisecond used, a step of up to
  ``max_rollback_ms`` is waited out and a larger one raises :class:`ClockRollbackError` (nothing is
  issued, nothing repeats; the generator works again once the clock catches up);
* the worker id is exclusive: explicit, or leased from Redis (:class:`WorkerIdLease`, backed by
  a per-host lock that survives a Redis wipe), in which case ids are only issued while the lease
  is known valid, a new holder starts after the previous holder's high-water millisecond, and a
  lease found lost stops the generator at once and is replaced on the next id.

The hot paths keep the per-id work to a clock read, two comparisons and one addition: epoch and
worker bits are folded into one precomputed ``_offset``, and the lease deadline and the layout's
end of time into one ``_valid_until`` compared only when the millisecond changes.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

from .clock import ClockNs, Sleep, wait_until_ms
from .errors import ClockRollbackError, WorkerLeaseError
from .layout import DEFAULT_LAYOUT, ParsedId, SnowflakeLayout
from .worker_lease import DEFAULT_LOCK_DIR, WorkerIdLease

if TYPE_CHECKING:
    import redis

_live_generators: weakref.WeakSet[Snowflake] = weakref.WeakSet()


class Snowflake:
    """Snowflake id generator. Give it exactly one of:

    * ``worker_id`` -- fixed; no Redis. Each live process needs its own (a forked child too).
    * ``redis`` -- a client to lease a free worker id from; released by :meth:`close`/at exit
      (``lock_dir``: see :class:`WorkerIdLease`).
    * ``lease`` -- a :class:`WorkerIdLease` you manage (and release) yourself.

    ``max_rollback_ms`` is the largest backwards clock step waited out rather than raised.
    ``clock``/``sleep`` default to :func:`time.time_ns`/:func:`time.sleep`; tests inject fakes.
    """

    __slots__ = (
        "__weakref__",
        "_lock",
        "_last",
        "_seq",
        "_valid_until",
        "_offset",
        "_shift",
        "_max_seq",
        "_clock",
        "_sleep",
        "_layout",
        "_max_rollback_ms",
        "_lease",
        "_owns_lease",
        "_lease_token",
        "_worker_id",
        "_closed",
    )

    def __init__(
        self,
        worker_id: int | None = None,
        *,
        redis: redis.Redis | None = None,
        lease: WorkerIdLease | None = None,
        layout: SnowflakeLayout = DEFAULT_LAYOUT,
        max_rollback_ms: int = 100,
        clock: ClockNs = time.time_ns,
        sleep: Sleep = time.sleep,
        lease_ttl_ms: int = 30_000,
        key_prefix: str = "idgen",
        lock_dir: str | os.PathLike[str] | None = DEFAULT_LOCK_DIR,  # type: ignore[assignment]
    ) -> None:
        if sum(x is not None for x in (worker_id, redis, lease)) != 1:
            raise ValueError("pass exactly one of worker_id, redis or lease")
        self._lock = threading.Lock()
        self._layout = layout
        self._shift = layout.timestamp_shift
        self._max_seq = layout.max_sequence
        self._clock = clock
        self._sleep = sleep
        self._max_rollback_ms = max_rollback_ms
        self._closed = False
        self._last = -1
        self._seq = layout.max_sequence
        self._lease_token = ""
        self._owns_lease = redis is not None
        if redis is not None:
            lease = WorkerIdLease(
                redis,
                max_worker_id=layout.max_worker_id,
                ttl_ms=lease_ttl_ms,
                prefix=key_prefix,
                clock=clock,
                lock_dir=lock_dir,
            )
        self._lease = lease
        if lease is not None:
            lease.on_lost(self._stop_minting)
        if clock() // 1_000_000 < layout.epoch_ms:
            raise ValueError("the clock reads earlier than the layout's epoch")
        if lease is None:
            self._set_worker(layout.check_worker_id(worker_id))  # type: ignore[arg-type]
            self._valid_until = layout.max_timestamp_ms + 1
        else:
            if lease.max_worker_id > layout.max_worker_id:
                raise ValueError("lease hands out worker ids this layout cannot hold")
            self._worker_id = -1
            self._valid_until = 0
            self._revalidate(clock() // 1_000_000)
        _live_generators.add(self)

    # -- public -------------------------------------------------------------------------------
    @property
    def worker_id(self) -> int:
        return self._worker_id

    @property
    def layout(self) -> SnowflakeLayout:
        return self._layout

    @property
    def lease(self) -> WorkerIdLease | None:
        """The worker-id lease behind this generator (None for an explicit worker id)."""
        return self._lease

    def next_id(self) -> int:
        """One id, strictly greater than every id this generator returned before."""
        with self._lock:
            now = self._clock() // 1_000_000
            if self._last < now < self._valid_until:  # first id of a new millisecond
                self._last = now
                self._seq = 0
                return (now << self._shift) + self._offset
            seq = self._seq
            if now == self._last and seq < self._max_seq:  # same millisecond, sequence left
                self._seq = seq = seq + 1
                return (now << self._shift) + self._offset + seq
            ms, seq, _ = self._advance(now, 1)
            return (ms << self._shift) + self._offset + seq

    def next_ids(self, n: int) -> list[int]:
        """``n`` ascending ids; one lock acquisition per millisecond's worth (up to 4,096)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        out: list[int] = []
        extend = out.extend
        clock = self._clock
        lock = self._lock
        while n:
            with lock:
                ms, first, taken = self._advance(clock() // 1_000_000, n)
                start = (ms << self._shift) + self._offset + first
            extend(range(start, start + taken))
            n -= taken
        return out

    def parse(self, snowflake_id: int) -> ParsedId:
        """Time (Unix ms and aware UTC datetime), worker id and sequence of an id."""
        return self._layout.parse(snowflake_id)

    def close(self) -> None:
        """Stop issuing ids and release a leased worker id, recording the last millisecond used."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._valid_until = -1
            self._seq = self._max_seq  # the same-millisecond fast path must fall through too
            last = self._last
        if self._owns_lease and self._lease is not None:
            self._lease.release(high_water_ms=max(last + 1, 1))
        _live_generators.discard(self)

    def __enter__(self) -> Snowflake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Snowflake(worker_id={self._worker_id}, layout={self._layout})"

    # -- slow paths (called with the lock held) -----------------------------------------------
    def _advance(self, now: int, want: int) -> tuple[int, int, int]:
        """Reserve up to ``want`` sequence numbers; return (millisecond, first sequence, count).

        Handles everything the fast path does not: a new millisecond past the lease deadline,
        an exhausted sequence (wait for the next millisecond) and a clock that went backwards.
        """
        max_seq = self._max_seq
        while True:
            last, seq = self._last, self._seq
            if now > last:
                if now >= self._valid_until:
                    self._revalidate(now)  # may move _last (new lease's high-water mark)
                    if now <= self._last:
                        continue
                first = 0
            elif now == last and seq < max_seq:
                first = seq + 1
            else:
                if self._closed:
                    raise RuntimeError("Snowflake generator is closed")
                behind = last - now
                if behind > self._max_rollback_ms:
                    raise ClockRollbackError(behind, self._max_rollback_ms)
                # Wait until the clock is back at the last millisecond (sequence left there) or
                # past it (sequence used up); then issue strictly after the last id.
                target = last + 1 if seq >= max_seq else last
                now = wait_until_ms(target, self._clock, self._sleep)
                continue
            taken = min(want, max_seq - first + 1)
            self._last = now
            self._seq = first + taken - 1
            return now, first, taken

    def _revalidate(self, now: int) -> None:
        """Refresh ``_valid_until``: closed? out of timestamp bits? lease still ours?"""
        if self._closed:
            raise RuntimeError("Snowflake generator is closed")
        end_of_time = self._layout.max_timestamp_ms + 1
        if now >= end_of_time:
            raise OverflowError("the layout's timestamp bits are exhausted; choose a later epoch")
        lease = self._lease
        if lease is None:
            self._valid_until = end_of_time
            return
        until = lease.ensure_valid(now)
        if lease.token != self._lease_token:  # first lease, or a fresh one after fork
            self._adopt(lease)
        self._valid_until = min(until, end_of_time)

    def _adopt(self, lease: WorkerIdLease) -> None:
        self._set_worker(self._layout.check_worker_id(lease.worker_id))
        self._lease_token = lease.token
        # Start after the previous holder's last millisecond, and in a fresh millisecond so ids
        # stay increasing even though the worker bits changed.
        self._last = max(self._last, lease.high_water_ms - 1)
        self._seq = self._max_seq

    def _stop_minting(self) -> None:
        """The lease was found lost (heartbeat thread): the next id goes the slow path, which
        takes a fresh lease. Lock-free on purpose: the caller holds the lease's mutex."""
        self._valid_until = 0
        self._seq = self._max_seq

    def _set_worker(self, worker_id: int) -> None:
        layout = self._layout
        self._worker_id = worker_id
        self._offset = (worker_id << layout.worker_shift) - (layout.epoch_ms << self._shift)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # another parent thread may have held it at fork time
        if self._lease is not None:
            self._valid_until = 0  # the parent keeps its worker id; take a fresh one on first use


def _after_fork_in_child() -> None:
    for gen in list(_live_generators):
        gen._after_fork_in_child()


def _close_all_at_exit() -> None:
    for gen in list(_live_generators):
        if gen._owns_lease:
            gen.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)  # runs before worker_lease's hook: exact high-water marks

__all__ = ["ClockRollbackError", "ParsedId", "Snowflake", "SnowflakeLayout", "WorkerLeaseError"]
