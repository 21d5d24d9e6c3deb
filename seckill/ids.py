"""The process's order-id generator: a snowflake whose worker id is leased from Redis.

Created lazily and re-created after a fork (gunicorn and Celery prefork workers), so two
processes never share a worker id and never hand out the same order id -- also across a Redis
restart without persistence: idgen's per-host lock keeps a live process's id its own
(``SECKILL_IDGEN_LOCK_DIR`` names the directory, e.g. a volume shared by web containers).
"""

from __future__ import annotations

import os
import threading
import time

from django.conf import settings

from idgen import ParsedId, Snowflake, WorkerLeaseError
from seckill.infrastructure.redis_client import get_redis, is_cluster

MAX_ORDER_ID = 2**63 - 1  # ids are positive signed 64-bit integers (a BIGINT primary key)

# On a Redis Cluster the worker-id leases are ``{idgen}:worker:<n>`` (+ ``:hwm``): the hash tag
# puts each lease's two keys, which one script updates, in one slot (all leases share it).
CLUSTER_LEASE_PREFIX = "{idgen}"

_lock = threading.Lock()
_generator: Snowflake | None = None
_owner_pid: int | None = None


def generator() -> Snowflake:
    global _generator, _owner_pid
    pid = os.getpid()
    if _generator is None or _owner_pid != pid:
        with _lock:
            if _generator is None or _owner_pid != pid:
                worker_id = getattr(settings, "SECKILL_WORKER_ID", None)
                if worker_id is not None:
                    _generator = Snowflake(worker_id=int(worker_id))
                else:
                    lock_dir = getattr(settings, "SECKILL_IDGEN_LOCK_DIR", None)
                    extra = {"lock_dir": lock_dir} if lock_dir else {}
                    client = get_redis()
                    if is_cluster(client):  # a lease and its high-water key: one slot
                        extra["key_prefix"] = CLUSTER_LEASE_PREFIX
                    _generator = Snowflake(redis=client, **extra)
                _owner_pid = pid
    return _generator


def next_order_id() -> int:
    return generator().next_id()


def parse_order_id(order_id: int) -> ParsedId:
    """Time, worker and sequence of an order id (for the teaching panel)."""
    return generator().parse(order_id)


def lease_health() -> tuple[bool, str]:
    """(held, detail) of this process's worker-id lease, renewed now: a lease found in another
    process's hands reports down once, and is replaced at once so orders go on."""
    lease = generator().lease
    if lease is None:
        return True, f"fixed worker id {generator().worker_id}"
    try:
        lease.renew()
        ok = True
    except WorkerLeaseError:
        ok = False
        lease.ensure_valid(time.time_ns() // 1_000_000)  # a fresh lease for the next order
    held = f"worker id {lease.worker_id}" if lease.held else "no worker id"
    detail = f"{held}; lost {lease.losses}x, re-claimed {lease.reclaims}x after Redis lost it"
    return ok, ("lease lost; " if not ok else "") + detail


def reset_generator() -> None:
    """Release this process's worker-id lease and forget the generator (a new Redis, tests)."""
    global _generator
    with _lock:
        if _generator is not None:
            _generator.close()
        _generator = None
