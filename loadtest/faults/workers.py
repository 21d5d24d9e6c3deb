"""Scenarios that SIGKILL a server process: a gunicorn worker holding the item lock, a Celery
worker draining redis_atomic orders."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

from loadtest.faults.buyers import (
    buy_until_final,
    crowd,
    crowd_in_background,
    make_buyers,
    make_sale,
)
from loadtest.faults.result import Result
from loadtest.faults.rig import SLACK, Rig, db_orders, wait_drained, wait_for


def holder_worker_pid(rig: Rig, client_port: int) -> int | None:
    """The gunicorn worker serving the connection from our local ``client_port``."""
    import psutil

    for child in psutil.Process(rig.gunicorn.pid).children():
        with contextlib.suppress(psutil.Error):
            for conn in child.net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port == client_port:
                    return child.pid
    return None


def gunicorn_worker_killed(
    database_url: str, work: Path, *, buyers: int = 5, stock: int = 3, lock_ttl: float = 2.0
) -> Result:
    """A gunicorn worker is SIGKILLed while it holds the item lock (strategy ``lock``).

    Every placement pauses 2 s inside the critical section (SECKILL_CRITICAL_SECTION_DELAY),
    so the victim's request is caught holding the lock even on a busy machine. Its watchdog
    dies with it, the lease frees by TTL, the victim retries with the same Idempotency-Key, and
    the crowd sells out.
    """
    result = Result(
        "gunicorn_worker_killed", "gunicorn worker SIGKILLed while holding the item lock"
    )
    extra = {
        "SECKILL_LOCK_TTL": str(lock_ttl),
        "SECKILL_CRITICAL_SECTION_DELAY": "2.0",
        "SECKILL_LOCK_WAIT": "0.5",
    }
    from seckill.keys import sale_keys

    with Rig(database_url, work, extra=extra) as rig:
        tokens = make_buyers("gk", buyers)
        sale_id = make_sale("lock", stock)
        lock_key = sale_keys(sale_id).lock
        client = rig.redis()
        key = uuid.uuid4().hex
        host, port = rig.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.connect()
        client_port = conn.sock.getsockname()[1]
        victim_error: list[str] = []

        def victim() -> None:
            try:
                conn.request(
                    "POST",
                    f"/api/v1/sales/{sale_id}/orders/",
                    body=json.dumps({"quantity": 1}),
                    headers={
                        "Authorization": f"Token {tokens[0]}",
                        "Idempotency-Key": key,
                        "Content-Type": "application/json",
                    },
                )
                victim_error.append(f"answered {conn.getresponse().status}")
            except OSError as exc:
                victim_error.append(type(exc).__name__)

        thread = threading.Thread(target=victim, daemon=True)
        thread.start()
        held = wait_for(lambda: client.exists(lock_key), 30)
        pid = holder_worker_pid(rig, client_port) if held else None
        result.check("victim_holds_lock", held and pid is not None)
        if pid is None:
            return result
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        thread.join(30)
        others, answers = crowd_in_background(rig.url, tokens[1:], sale_id, threads=4)
        freed = wait_for(lambda: not client.exists(lock_key), lock_ttl + SLACK, 0.01)
        freed_after = time.monotonic() - killed_at
        others.join(300)
        again = buy_until_final(rig.url, tokens[0], sale_id)  # the victim retries its key
        first_ok = min((a.at for a in answers if a.status == 201), default=None)
        orders = db_orders(sale_id)
        result.observed = {
            "victim": victim_error[0] if victim_error else "?",
            "lock_freed_after_s": round(freed_after, 2),
            "next_sale_after_s": round(first_ok - killed_at, 2) if first_ok else None,
            "orders": len(orders),
            "stock": stock,
            "victim_retry": again.code,
        }
        no_answer = bool(victim_error) and "answered" not in victim_error[0]
        result.check("victim_got_no_answer", no_answer)
        result.check("lock_freed_within_ttl", bool(freed) and freed_after <= lock_ttl + SLACK)
        result.check("others_continue", first_ok is not None)
        result.check("sold_exactly_stock", len(orders) == stock)
        result.audited(rig, sale_id)
    return result


def celery_worker_killed(
    database_url: str, work: Path, *, buyers: int = 30, stock: int = 30
) -> Result:
    """A Celery worker is SIGKILLed while draining ``redis_atomic`` orders to the database.

    The worker is paused while the crowd is accepted (the orders pile up in the sale's queued
    hash, their drain request in the broker), resumed, and killed as soon as it holds the
    sale's drain lock (each drain holds it 1 s first: ``SECKILL_DRAIN_DELAY``). Its
    unacknowledged task (acks_late) is redelivered — forced here the way
    the visibility timeout would do it an hour later — to a replacement worker, which waits out
    the dead drain's lock lease; persisting is idempotent by order id. Every 202 ends as exactly
    one order and the stock is deducted once per order.
    """
    from seckill.keys import sale_keys

    result = Result("celery_worker_killed", "Celery worker SIGKILLed while persisting orders")
    # Each drain holds its lock 1 s before writing, so the kill lands inside one for certain
    # (a fast drain of a few orders could finish between two looks at the lock).
    extra = {"SECKILL_DRAIN_DELAY": "1"}
    with Rig(database_url, work, celery_concurrency=4, extra=extra) as rig:
        tokens = make_buyers("ck", buyers)
        sale_id = make_sale("redis_atomic", stock)
        drain_lock = sale_keys(sale_id).drain_lock
        os.killpg(rig.celery.pid, signal.SIGSTOP)
        try:
            answers = crowd(rig.url, tokens, sale_id, threads=6)
        finally:
            os.killpg(rig.celery.pid, signal.SIGCONT)
        accepted = {a.order_id for a in answers if a.status == 202}
        draining = wait_for(lambda: rig.redis().exists(drain_lock), 60, 0.001)
        os.killpg(rig.celery.pid, signal.SIGKILL)
        rig.celery.wait(10)
        persisted = set(db_orders(sale_id))
        redelivered = redeliver_unacked(rig)
        rig.start_celery_worker("replacement")
        drained = wait_drained(rig, sale_id, 180)
        orders = db_orders(sale_id)
        result.observed = {
            "accepted_202": len(accepted),
            "persisted_at_kill": len(persisted),
            "redelivered_drain_tasks": len(redelivered),
            "orders": len(orders),
            "stock": stock,
        }
        result.check("killed_while_draining", bool(draining))
        result.check("unacked_tasks_redelivered", len(redelivered) > 0)
        result.check("queue_drained", drained)
        result.check("every_202_is_an_order", accepted == set(orders))
        result.audited(rig, sale_id)
    return result


def redeliver_unacked(rig: Rig) -> list[int]:
    """Put the dead worker's unacknowledged messages back on their queues now; the sale ids
    of the drain tasks among them.

    Kombu's Redis transport does this by itself once a message has been unacknowledged for
    ``visibility_timeout`` (an hour); the same restore with a zero timeout stands in for
    waiting that hour.
    """
    import base64

    from kombu import Connection

    sale_ids = []
    for raw in rig.redis().hvals("unacked"):
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            message = json.loads(raw)[0]
            if message["headers"].get("task") == "seckill.persist_queued":
                sale_ids.append(int(json.loads(base64.b64decode(message["body"]))[0][0]))
    with Connection(rig.redis_server.url, transport_options={"visibility_timeout": 0}) as conn:
        conn.default_channel.qos.restore_visible(start=0, num=10_000)
    return sale_ids
