"""Lease a free snowflake worker id from Redis, so processes need no worker-id configuration.

A process claims ``idgen:worker:<n>`` for the lowest free ``n`` with an atomic ``SET NX PX``,
keeps it alive with a heartbeat thread (renewal every ``ttl/3``) and deletes it on ``close()`` or
at interpreter exit. A process that dies without releasing loses the id when the key's TTL runs
out, and only then can another process take it.

Why a sibling *high-water* key (``idgen:worker:<n>:hwm``)? A lease alone does not stop the next
holder of ``n`` from minting the ids the previous holder minted, if the next holder's clock is
behind the previous one's (another host, or NTP stepped back in between). Each renewal records
``valid_until`` -- the millisecond from which the holder promises not to use ``n`` -- and a clean
release records the last millisecond really used + 1. A new holder starts its generator there, so
the clock-rollback guard of :class:`idgen.Snowflake` covers the hand-over as well.

The lease's own deadline (``valid_until_ms``) is computed from the local clock *before* the claim
or renewal is sent, minus a margin, so the holder stops using the id before Redis can expire it.
Claims and renewals run as Lua scripts over the two keys; on Redis Cluster give both the same slot
with a hash-tagged prefix such as ``{idgen}``.

What Redis may lose, a per-host :mod:`flock <idgen.host_lock>` keeps: a claim first locks
``<n>.lock`` in a directory shared by the processes of this host, so no second live process here
can be handed ``n`` even when Redis restarts empty; a holder that finds its key gone writes it
back (counted in :attr:`WorkerIdLease.reclaims`). A lease another process took anyway (another
host after a wipe) stops the generator at once (:attr:`lost`), and the next id takes a fresh
lease instead of failing for good (:attr:`losses` counts those).

A forked child must not keep using its parent's worker id: leases notice the fork and the
generator takes a fresh lease in the child on first use.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .clock import ClockNs
from .errors import WorkerLeaseError
from .host_lock import HostLock, default_lock_dir

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

#: High-water keys outlive any plausible restart gap, then go away by themselves.
HWM_TTL_MS = 7 * 24 * 3600 * 1000

# KEYS: lease, hwm. ARGV: token, ttl_ms, valid_until_ms, hwm_ttl_ms.
# Returns the previous high-water mark ("0" if none) on success, false if n is taken.
_CLAIM = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('SET', KEYS[2], math.max(prev, tonumber(ARGV[3])), 'PX', ARGV[4])
return tostring(prev)
"""

# Same keys and arguments. 1: renewed; 2: key had expired or was lost (Redis restart) and nobody
# else took it, so it is ours again; 0: someone else holds it now.
_RENEW = """
local v = redis.call('GET', KEYS[1])
local status = 1
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  status = 2
else
  return 0
end
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('SET', KEYS[2], math.max(prev, tonumber(ARGV[3])), 'PX', ARGV[4])
return status
"""

# KEYS: lease, hwm. ARGV: token, exact high-water ms, hwm_ttl_ms. 1 if we held it and let it go.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[1])
return 1
"""

_live_leases: weakref.WeakSet[WorkerIdLease] = weakref.WeakSet()


DEFAULT_LOCK_DIR = object()  # sentinel: derive the host-lock directory from the Redis namespace


class WorkerIdLease:
    """An exclusive, self-renewing claim on one worker id in ``0..max_worker_id``.

    ``lock_dir``: where the per-host locks live (default: derived from the Redis address, db
    and prefix; ``None`` turns them off and trusts Redis alone, which a Redis without
    persistence does not deserve).
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        max_worker_id: int = 1023,
        ttl_ms: int = 30_000,
        prefix: str = "idgen",
        clock: ClockNs = time.time_ns,
        heartbeat: bool = True,
        lock_dir: str | os.PathLike[str] | None = DEFAULT_LOCK_DIR,  # type: ignore[assignment]
    ) -> None:
        if ttl_ms < 300:
            raise ValueError("ttl_ms below 300 leaves no room for a heartbeat")
        self._redis = redis_client
        self.max_worker_id = max_worker_id
        self.ttl_ms = ttl_ms
        self.prefix = prefix
        self._clock = clock
        self._heartbeat_enabled = heartbeat
        self._margin_ms = max(ttl_ms // 10, 50)
        if lock_dir is DEFAULT_LOCK_DIR:
            lock_dir = default_lock_dir(redis_client, prefix)
        self.lock_dir: Path | None = None if lock_dir is None else Path(lock_dir)
        self._host_lock: HostLock | None = None
        self._claim = redis_client.register_script(_CLAIM)
        self._renew = redis_client.register_script(_RENEW)
        self._release = redis_client.register_script(_RELEASE)
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._token = ""
        self._on_lost: list[Callable[[], None]] = []
        self.worker_id: int = -1
        #: Wall-clock millisecond from which this process must stop using ``worker_id``.
        self.valid_until_ms: int = 0
        #: First millisecond the previous holder left free for us (0: none recorded).
        self.high_water_ms: int = 0
        self.lost = False
        #: Renewals that found the key gone (Redis lost its data) and wrote it back.
        self.reclaims = 0
        #: Leases found in another process's hands; each was given up and replaced.
        self.losses = 0

    # -- keys ---------------------------------------------------------------------------------
    def key(self, worker_id: int) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def _keys(self, worker_id: int) -> list[str]:
        return [self.key(worker_id), f"{self.prefix}:worker:{worker_id}:hwm"]

    @property
    def token(self) -> str:
        """Unique per acquisition: tells a generator that it holds a different lease now."""
        return self._token

    def _now_ms(self) -> int:
        return self._clock() // 1_000_000

    def _args(self, now_ms: int) -> tuple[list[object], int]:
        valid_until = now_ms + self.ttl_ms - self._margin_ms
        return [self._token, self.ttl_ms, valid_until, HWM_TTL_MS], valid_until

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the heartbeat thread) the moment the lease is found lost."""
        self._on_lost.append(callback)

    # -- life cycle ---------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        """True while this process (not a forked child of it) holds the lease."""
        return self.worker_id >= 0 and self._pid == os.getpid() and not self.lost

    def acquire(self) -> int:
        """Claim the lowest free worker id and start the heartbeat; return the id.

        A lost lease is replaced: a fresh token and, usually, another worker id.
        """
        with self._mutex:
            if self.held:
                return self.worker_id
            self._drop_host_lock()
            self._pid = os.getpid()
            self._token = f"{socket.gethostname()}:{self._pid}:{uuid.uuid4().hex}"
            self.worker_id = -1
            self.lost = False
            for n in range(self.max_worker_id + 1):
                if self._claim_one(n):
                    break
            else:
                raise WorkerLeaseError(
                    f"all {self.max_worker_id + 1} worker ids under {self.prefix!r} are leased"
                )
        _live_leases.add(self)
        if self._heartbeat_enabled:
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._beat, name=f"idgen-lease-{self.worker_id}", daemon=True
            )
            self._thread.start()
        return self.worker_id

    def _claim_one(self, n: int) -> bool:
        """Host lock first (a live holder here keeps it whatever Redis lost), then the key."""
        host_lock = None
        if self.lock_dir is not None:
            host_lock = HostLock.try_acquire(self.lock_dir, n)
            if host_lock is None:
                return False
        args, valid_until = self._args(self._now_ms())
        prev = self._claim(keys=self._keys(n), args=args)
        if prev is None:
            if host_lock is not None:
                host_lock.release()
            return False
        high_water = int(prev)
        if host_lock is not None:
            high_water = max(high_water, host_lock.high_water_ms())
            host_lock.promise(valid_until)
        self._host_lock = host_lock
        self.worker_id, self.valid_until_ms, self.high_water_ms = n, valid_until, high_water
        return True

    def renew(self) -> int:
        """Extend the lease now; return the new ``valid_until_ms``. Raises if another took it."""
        with self._mutex:
            if not self.held:
                raise WorkerLeaseError("lease is not held by this process")
            args, valid_until = self._args(self._now_ms())
            if self._host_lock is not None:
                self._host_lock.promise(valid_until)  # before Redis: the wipe-proof record
            status = self._renew(keys=self._keys(self.worker_id), args=args)
            if status == 0:
                self._mark_lost()
                raise WorkerLeaseError(
                    f"worker id {self.worker_id} was taken by another process; lease lost"
                )
            if status == 2:
                self.reclaims += 1
                log.warning("idgen: re-claimed worker id %s after its key vanished", self.worker_id)
            self.valid_until_ms = valid_until
            return valid_until

    def _mark_lost(self) -> None:
        """Stop minting at once; the next :meth:`ensure_valid` takes a fresh lease."""
        self.lost = True
        self.losses += 1
        self.valid_until_ms = 0
        for callback in self._on_lost:
            callback()

    def ensure_valid(self, now_ms: int) -> int:
        """Return ``valid_until_ms`` beyond ``now_ms``, renewing synchronously when it is not.

        A lease lost to another process is replaced here, so a caller never fails for good.
        """
        if self.valid_until_ms > now_ms and self.held:
            return self.valid_until_ms
        if self.worker_id < 0 or self._pid != os.getpid() or self.lost:
            self.acquire()  # first use, a forked child, or a lost lease: a fresh id
            if self.valid_until_ms > now_ms:
                return self.valid_until_ms
        try:
            until = self.renew()
        except WorkerLeaseError:
            if not self.lost:
                raise
            self.acquire()
            until = self.valid_until_ms
        if until <= now_ms:
            raise WorkerLeaseError("lease deadline is not ahead of the clock even after renewal")
        return until

    def release(self, high_water_ms: int | None = None) -> None:
        """Give the id back. ``high_water_ms``: first millisecond the next holder may use."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
        with self._mutex:
            if not self.held:
                self._drop_host_lock()
                return
            hwm = self._now_ms() + 1 if high_water_ms is None else high_water_ms
            if self._host_lock is not None:
                self._host_lock.promise(hwm)
            try:
                self._release(keys=self._keys(self.worker_id), args=[self._token, hwm, HWM_TTL_MS])
            except Exception:  # Redis gone: the TTL frees the id later
                log.warning("idgen: could not release worker id %s", self.worker_id, exc_info=True)
            self._drop_host_lock()
            self.valid_until_ms = 0
            self.worker_id = -1
        _live_leases.discard(self)

    close = release

    def _drop_host_lock(self) -> None:
        if self._host_lock is not None and self._pid == os.getpid():
            self._host_lock.release()
        self._host_lock = None

    def __enter__(self) -> WorkerIdLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- heartbeat ----------------------------------------------------------------------------
    def _beat(self) -> None:
        interval = self.ttl_ms / 3000
        stop = self._stop
        while not stop.wait(interval):
            try:
                self.renew()
            except WorkerLeaseError:
                log.error("idgen: lost worker id lease %s", self.worker_id)
                return
            except Exception:  # transient: the next beat retries; the deadline keeps us safe
                log.warning(
                    "idgen: heartbeat for worker id %s failed", self.worker_id, exc_info=True
                )

    def _forget_after_fork(self) -> None:
        """In a forked child: the parent still owns the id; drop it without touching Redis."""
        if self._host_lock is not None:
            self._host_lock.forget_after_fork()
            self._host_lock = None
        self.worker_id = -1
        self.valid_until_ms = 0
        self._thread = None
        self._stop = threading.Event()
        self._mutex = threading.Lock()


def _after_fork_in_child() -> None:
    for lease in list(_live_leases):
        lease._forget_after_fork()
    _live_leases.clear()


def _release_all_at_exit() -> None:
    for lease in list(_live_leases):
        lease.release()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_release_all_at_exit)
