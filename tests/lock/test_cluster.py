"""The unchanged Lock on redis-py's RedisCluster (three masters, ``redis_cluster`` fixture)."""

from __future__ import annotations

import threading
import time

import pytest

from seckill.lock import Lock, LockNotOwnedError

pytestmark = pytest.mark.cluster


def test_cluster_is_three_masters(redis_cluster) -> None:
    assert len(redis_cluster.get_primaries()) == 3


@pytest.mark.parametrize("name", ["seckill:{sale:42}:lock", "plain-name", "other:{x}"])
def test_lock_works_on_cluster_for_any_slot(redis_cluster, name) -> None:
    a, b = Lock(redis_cluster, name, ttl=10), Lock(redis_cluster, name, ttl=10)
    assert a.acquire(blocking=False) and a.owned()
    assert not b.acquire(timeout=0.1)
    a.extend()
    a.release()
    assert b.acquire(blocking=False) and b.fence > a.fence
    redis_cluster.set(b.key, "stolen")
    with pytest.raises(LockNotOwnedError):
        b.release()
    redis_cluster.delete(b.key)


def test_cluster_contention_hand_off_and_exclusion(redis_cluster) -> None:
    counter = "{cluster-mx}:counter"
    redis_cluster.set(counter, 0)

    def work() -> None:
        lock = Lock(redis_cluster, "cluster-mx", ttl=10, reentrant=True)
        for _ in range(15):
            with lock, lock:  # reentrant, too
                value = int(redis_cluster.get(counter))
                time.sleep(0.001)
                redis_cluster.set(counter, value + 1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert int(redis_cluster.get(counter)) == 60
    redis_cluster.delete(counter)
