"""Per-host worker-id locks: what keeps a live process's worker id its own when Redis forgets.

A Redis lease alone is only as good as Redis's memory. When a Redis without persistence
restarts (or is flushed), every ``idgen:worker:<n>`` key is gone while their holders go on
minting until their next renewal, and a process that starts meanwhile would take the lowest
"free" id -- a live holder's -- and mint the same ids in the same milliseconds.

So a claim takes two locks: first an exclusive ``flock`` on ``<dir>/<n>.lock``, then the Redis
key. The kernel holds a flock exactly as long as its process lives (a SIGKILL releases it, a
Redis restart cannot), so no second live process on this host can take ``n``, whatever Redis
loses, and a holder that finds its key gone may simply write it back. Redis still arbitrates
between hosts; the flock is what survives the wipe.

Each file also holds the last lease deadline its holder promised (its high-water mark, in Unix
ms): the next holder starts after it even when the Redis high-water key went with the wipe.

Scope: processes on one host that use the same directory. The default directory is derived
from the Redis address, database and key prefix, so every process leasing from the same Redis
namespace on this host meets in it. Processes on *other* hosts are not seen: with several
minting hosts, run Redis with persistence or give each host its own ``max_worker_id`` range.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

_HWM = 8  # bytes of the big-endian high-water mark at the start of a lock file


def default_lock_dir(redis_client: redis.Redis, prefix: str) -> Path:
    """``<tmp>/idgen-<uid>/<host>-<port>-<db>-<prefix>``: one directory per Redis namespace.

    A Redis Cluster client (no single connection pool) is named by the lowest ``host:port`` of
    the nodes it knows: every process of this host on the same cluster finds the same one."""
    pool = getattr(redis_client, "connection_pool", None)
    if pool is None:
        nodes = redis_client.nodes_manager.startup_nodes  # type: ignore[attr-defined]
        where, db = f"cluster-{min(nodes)}", 0
    else:
        kw = pool.connection_kwargs
        where = kw.get("path") or f"{kw.get('host', 'localhost')}-{kw.get('port', 6379)}"
        db = kw.get("db", 0)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{where}-{db}-{prefix}")
    return Path(tempfile.gettempdir()) / f"idgen-{os.getuid()}" / name


class HostLock:
    """An exclusive flock on one worker id's file, held until :meth:`release` or process death."""

    def __init__(self, fd: int, worker_id: int) -> None:
        self._fd = fd
        self.worker_id = worker_id

    @classmethod
    def try_acquire(cls, directory: Path, worker_id: int) -> HostLock | None:
        """The lock on ``worker_id``, or None when another live process on this host has it."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(directory / f"{worker_id}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(fd, worker_id)

    def high_water_ms(self) -> int:
        """The deadline the last holder on this host promised (0 when none was written)."""
        data = os.pread(self._fd, _HWM, 0)
        return int.from_bytes(data, "big") if len(data) == _HWM else 0

    def promise(self, until_ms: int) -> None:
        """Record that this holder mints with the id only before ``until_ms``. No fsync: the file
        must outlive processes and Redis, not the host (a host crash takes every holder along)."""
        os.pwrite(self._fd, until_ms.to_bytes(_HWM, "big"), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = -1

    def forget_after_fork(self) -> None:
        """In a forked child: close the inherited descriptor; the parent's keeps the lock."""
        self.release()
