"""``acquire(wake_on=...)``: one blocking wait that also ends when one of the caller's lists
gets an item (group commit's waiters wait for their answer or the lock, whichever comes first)."""

from __future__ import annotations

import threading
import time

from seckill.lock import Lock


def test_a_wait_ends_when_a_wake_on_key_fires_and_leaves_the_queue(redis_client) -> None:
    holder = Lock(redis_client, "wake-on", ttl=30)
    assert holder.acquire()
    waiter = Lock(redis_client, "wake-on", ttl=30)
    threading.Timer(0.3, lambda: redis_client.rpush("wake-on:reply", "answer")).start()
    started = time.monotonic()
    assert not waiter.acquire(timeout=20, wake_on=("wake-on:reply",))
    assert time.monotonic() - started < 10  # woken by the reply, not by the timeout
    assert waiter.woken_by is not None and waiter.woken_by[1] in (b"answer", "answer")
    assert waiter.token is None
    # The waiter left the lock's queue: the holder's release frees the lock for a newcomer.
    holder.release()
    newcomer = Lock(redis_client, "wake-on", ttl=30)
    assert newcomer.acquire(blocking=False)
    newcomer.release()


def test_a_hand_off_still_wins_and_woken_by_stays_none(redis_client) -> None:
    holder = Lock(redis_client, "wake-on-2", ttl=30)
    assert holder.acquire()
    waiter = Lock(redis_client, "wake-on-2", ttl=30)
    threading.Timer(0.3, holder.release).start()
    assert waiter.acquire(timeout=20, wake_on=("wake-on-2:reply",))
    assert waiter.woken_by is None and waiter.fence == holder.fence + 1
    waiter.release()


def test_a_reply_waiting_before_the_wait_ends_it_at_once(redis_client) -> None:
    holder = Lock(redis_client, "wake-on-3", ttl=30)
    assert holder.acquire()
    redis_client.rpush("wake-on-3:reply", "early")
    for _ in range(2):  # the first wait is uncontended, the second pipelined (ACQUIRE + BLPOP)
        waiter = Lock(redis_client, "wake-on-3", ttl=30)
        assert not waiter.acquire(timeout=20, wake_on=("wake-on-3:reply",))
        assert waiter.woken_by is not None
        redis_client.rpush("wake-on-3:reply", "again")
    holder.release()
