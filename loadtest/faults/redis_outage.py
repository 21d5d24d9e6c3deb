"""Scenarios where Redis goes away mid-sale: restarted empty, restarted inside a critical
section, killed under load, frozen by SIGSTOP."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from devtools.redis_server import RedisServer
from loadtest.faults.buyers import (
    Answer,
    accepted_figures,
    buy_until_final,
    codes,
    crowd,
    crowd_in_background,
    make_buyers,
    make_sale,
    place,
)
from loadtest.faults.result import Result
from loadtest.faults.rig import SLACK, Rig, db_orders, supervise_celery, wait_drained, wait_for


def redis_restart(
    database_url: str,
    work: Path,
    *,
    strategy: str = "lock_fenced",
    buyers: int = 12,
    stock: int = 8,
) -> Result:
    """Redis restarted mid-sale with no persistence: every key is gone.

    While it is down, placements answer 503 at once. When it is back, the first request
    rebuilds stock, buyer sets and the sold-out flag from the database before anything is sold:
    buyers who already bought are refused (limit), the rest sell out exactly the stock, and a
    sold-out sale stays sold out across a second restart.
    """
    result = Result(f"redis_restart[{strategy}]", "Redis restarted mid-sale (no persistence)")
    from seckill.keys import sale_keys

    with Rig(database_url, work) as rig:
        tokens = make_buyers("rr", buyers)
        sale_id = make_sale(strategy, stock)
        keys = sale_keys(sale_id)
        first = crowd(rig.url, tokens[: stock // 2], sale_id, threads=4)
        if strategy == "redis_atomic":
            wait_drained(rig, sale_id)
        rig.redis_server.stop()
        down = [place(rig.url, t, sale_id, timeout=30) for t in tokens[stock // 2 :][:4]]
        rig.redis_server.start()
        time.sleep(1.0)
        celery_died = supervise_celery(rig)
        client = rig.redis()
        result.check("keys_gone_after_restart", not client.exists(keys.stock))
        repeat = [buy_until_final(rig.url, t, sale_id) for t in tokens[:2]]
        rebuilt = client.hgetall(keys.buyers)
        rest = crowd(rig.url, tokens[stock // 2 :], sale_id, threads=4)
        if strategy == "redis_atomic":
            rest_orders = wait_drained(rig, sale_id)
            result.check("queue_drained", rest_orders)
        sold_out_flag = bool(client.exists(keys.soldout))
        rig.redis_server.stop()
        rig.redis_server.start()
        time.sleep(1.0)
        celery_died = supervise_celery(rig) or celery_died
        late = buy_until_final(rig.url, tokens[-1], sale_id)
        orders = db_orders(sale_id)
        accepted = {a.order_id for a in first + rest if a.status in (201, 202)}
        result.observed = {
            "while_down": codes(down),
            "max_down_latency_s": round(max(a.elapsed for a in down), 2),
            "earlier_buyers_after": [a.code for a in repeat],
            "orders": len(orders),
            "stock": stock,
            "late_buyer": late.code,
            "celery_worker_died": celery_died,
        }
        result.check("down_is_503", all(a.status == 503 for a in down))
        result.check("down_is_fast", max(a.elapsed for a in down) < SLACK)
        result.check(
            "buyer_set_rebuilt",
            len(rebuilt) >= min(2, stock // 2)
            and all(a.code in ("ok", "limit_reached") for a in repeat),
        )
        result.check("sold_out_flag_rebuilt", sold_out_flag and late.code == "sold_out")
        result.check("sold_exactly_stock", len(orders) == stock)
        result.check("every_accepted_is_an_order", accepted <= set(orders))
        result.audited(rig, sale_id)
    return result


def redis_restart_mid_critical_section(database_url: str, work: Path) -> Result:
    """Redis SIGKILLed and restarted while a buyer holds the item lock inside the critical
    section (it has read the stock and pauses 2 s before writing): the restart wipes its lock,
    so a second buyer takes a fresh one and reads the same stock.

    Run on two sales in one stack. ``lock``: both write — two orders, one unit deducted (the
    audit finds the lost update; this is what ``lock`` alone allows, as with a stalled holder in
    tests/engine/test_fencing.py). ``lock_fenced``: the mirror rebuild restores the fence floor
    from the database, so one of the two writes is refused (stale fence), its buyer retries,
    and the sale stays conserved: audit clean.
    """
    result = Result(
        "redis_restart_mid_critical_section",
        "Redis restarted while a lock holder is inside the critical section",
    )
    extra = {"SECKILL_CRITICAL_SECTION_DELAY": "2.0", "SECKILL_LOCK_WAIT": "0.5"}
    from seckill.keys import sale_keys

    with Rig(database_url, work, extra=extra) as rig:
        tokens = make_buyers("rc", 2)
        audits = {}
        for strategy in ("lock", "lock_fenced"):
            sale_id = make_sale(strategy, 5)
            first: list[Answer] = []
            holder = threading.Thread(
                target=lambda sid=sale_id, out=first: out.append(
                    buy_until_final(rig.url, tokens[0], sid)
                )
            )
            holder.start()
            wait_for(lambda sid=sale_id: rig.redis().exists(sale_keys(sid).lock), 30, 0.01)
            time.sleep(0.3)  # it has read the stock and is pausing inside the lock
            rig.redis_server.kill()
            rig.redis_server.start()
            second = buy_until_final(rig.url, tokens[1], sale_id)
            holder.join(120)
            supervise_celery(rig)
            report = rig.audit(sale_id)
            sale = (report.get("sales") or [{}])[0]
            audits[strategy] = {
                "answers": [first[0].code if first else "?", second.code],
                "orders": len(db_orders(sale_id)),
                "stock_left": sale.get("stock_left"),
                "violations": [v["code"] for v in sale.get("violations", [])],
            }
            if strategy == "lock_fenced":
                result.audited(rig, sale_id)
        result.observed = audits
        result.check(
            "both_buyers_served",
            all(a["answers"] == ["ok", "ok"] and a["orders"] == 2 for a in audits.values()),
        )
        result.check("lock_alone_loses_the_update", "not_conserved" in audits["lock"]["violations"])
        result.check("lock_fenced_conserved", audits["lock_fenced"]["stock_left"] == 3)
    return result


def redis_restart_under_load(
    database_url: str,
    work: Path,
    *,
    strategy: str = "lock_fenced",
    buyers: int = 40,
    stock: int = 25,
    down: float = 1.0,
    persistence: bool = False,
    fsync: str = "always",
    threads: int = 6,
) -> Result:
    """Redis SIGKILLed and started again while a crowd is buying: requests in flight lose their
    lock and their mirror writes. The crowd keeps retrying with its Idempotency-Keys until sold
    out; the database must hold exactly the stock, never more.

    redis_atomic keeps an accepted (202) order only in Redis until Celery writes it, so without
    Redis persistence the orders accepted just before the crash are lost (reported as
    ``lost_202``, a known limitation); ``persistence=True`` runs Redis with
    ``appendonly yes`` and ``appendfsync`` = ``fsync`` (``always``: none may be lost;
    ``everysec``, what bin/run's private Redis uses: at most the last second's writes).
    """
    aof = ["--appendonly", "yes", "--appendfsync", fsync] if persistence else []
    label = f"{strategy}{f', AOF {fsync}' if persistence else ''}"
    result = Result(
        f"redis_restart_under_load[{label}]",
        "Redis SIGKILLed and restarted while a crowd buys"
        + (f" (AOF {fsync})" if persistence else " (no persistence)"),
    )
    with Rig(database_url, work, redis_server=RedisServer(extra_args=aof)) as rig:
        tokens = make_buyers("rl", buyers)
        sale_id = make_sale(strategy, stock)
        runner, answers = crowd_in_background(rig.url, tokens, sale_id, threads=threads)
        wait_for(lambda: len(db_orders(sale_id)) >= stock // 3, 120, 0.02)
        rig.redis_server.kill()
        time.sleep(down)
        rig.redis_server.start()
        time.sleep(1.0)
        celery_died = supervise_celery(rig)
        runner.join(600)
        swept = 0
        if strategy == "redis_atomic":
            swept = sweep_when_stuck(rig, sale_id)
            result.check("queue_drained", wait_drained(rig, sale_id, 30))
        orders = db_orders(sale_id)
        figures = accepted_figures(answers, orders)  # per answer: duplicates count as lost
        lost = figures["lost_accepted"]
        from seckill.models import Order, OrderStatus

        cancelled = Order.objects.filter(sale_id=sale_id, status=OrderStatus.CANCELLED).count()
        result.observed = {
            "answers": codes(answers),
            "orders": len(orders),
            "stock": stock,
            "lost_202": lost,
            "duplicate_ids": figures["duplicate_ids"],
            "celery_worker_died": celery_died,
            "cancelled_no_unit_left": cancelled,
            "persisted_by_sweep": swept,
        }
        result.check("never_oversold", len(orders) <= stock)
        result.check("no_duplicate_ids", figures["duplicate_ids"] == 0)
        if strategy == "redis_atomic" and not (persistence and fsync == "always"):
            result.note = (
                "known limitation: without Redis persistence (or with everysec, the last "
                "second's), 202s accepted just before the crash are lost or cancelled"
            )
        else:
            result.check("sold_exactly_stock", len(orders) == stock)
            result.check("every_accepted_is_an_order", lost == 0)
        result.audited(rig, sale_id)
    return result


def sweep_when_stuck(rig: Rig, sale_id: int, patience: float = 30.0) -> int:
    """If accepted orders still wait in Redis after ``patience`` s, run the periodic sweep
    (beat's ``seckill.sweep`` every 10 s in production; no beat runs in the rig) once; the
    number it persisted. A task lost with a dead broker connection stays unacknowledged for
    the visibility timeout, so the sweep is what writes its order."""
    from seckill.order_queue import persist_stale_queued

    if wait_drained(rig, sale_id, patience):
        return 0
    return persist_stale_queued(older_than_seconds=0)


def settle_after_outage(rig: Rig, sale_id: int, strategy: str) -> dict[str, Any]:
    """What the periodic jobs do after an outage, run once now (no beat runs in the rig):
    restart a dead Celery worker, sweep stuck redis_atomic orders, reconcile the mirror (a
    database commit whose Redis write failed leaves drift until the reconciler repairs it)."""
    from seckill.reconcile import reconcile

    done: dict[str, Any] = {"celery_worker_died": supervise_celery(rig)}
    if strategy == "redis_atomic":
        done["persisted_by_sweep"] = sweep_when_stuck(rig, sale_id)
        done["drained"] = wait_drained(rig, sale_id, 30)
    report = reconcile(sale_id).as_dict()
    done["drift_repaired"] = len(report["fixed"])
    return done


def redis_unreachable(
    database_url: str,
    work: Path,
    *,
    strategy: str = "lock",
    buyers: int = 16,
    stock: int = 10,
    frozen: float = 8.0,
) -> Result:
    """Redis unreachable for a few seconds (SIGSTOP: connections hang, nothing is refused)
    while a crowd is buying. No request hangs: each is answered (503, or its order) within the
    Redis socket timeouts (2 s, one retry: seckill.infrastructure.redis_client) plus slack, and
    a freeze longer than that is answered 503; after SIGCONT the crowd (retrying its keys) sells
    out, and the periodic jobs (run once here) leave the mirror in step."""
    result = Result(
        f"redis_unreachable[{strategy}]", f"Redis frozen (SIGSTOP) for {frozen:.0f}s mid-sale"
    )
    with Rig(database_url, work) as rig:
        tokens = make_buyers("ru", buyers)
        sale_id = make_sale(strategy, stock)
        runner, answers = crowd_in_background(rig.url, tokens, sale_id, threads=6)
        time.sleep(0.5)
        proc = rig.redis_server.process
        assert proc is not None
        proc.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            time.sleep(frozen)
        finally:
            proc.send_signal(signal.SIGCONT)
        runner.join(300)
        settled = settle_after_outage(rig, sale_id, strategy)
        during = [
            a for a in answers if a.at - a.elapsed < stopped_at + frozen and a.at > stopped_at
        ]
        orders = db_orders(sale_id)
        slowest = max((a.elapsed for a in answers), default=0.0)
        result.observed = {
            "answers_during_freeze": codes(during),
            "slowest_answer_s": round(slowest, 2),
            "no_http_answer": sum(1 for a in answers if a.status == 0),
            "orders": len(orders),
            "stock": stock,
            **settled,
        }
        result.check("every_request_answered", all(a.status != 0 for a in answers))
        # Worst case per request: four Redis calls (throttle, lock or stock check, mirror write,
        # lock release), each two attempts of the 2 s socket timeout.
        result.check("none_hung", slowest < 4 * 2 * 2.0 + SLACK)
        result.check(
            "only_503_or_served", all(a.status in (200, 201, 202, 409, 429, 503) for a in answers)
        )
        if frozen >= 3 * 2 * 2.0:  # longer than any request can wait on Redis: some must fail
            result.check("saw_503_while_frozen", any(a.status == 503 for a in during))
        result.check("sold_exactly_stock", len(orders) == stock)
        result.audited(rig, sale_id)
    return result
