"""A staff reset while a crowd buys, under every safe strategy.

Before the reset took the sale row's lock and closed the Redis mirror first, an order
committing between its DELETE and its stock UPDATE survived the reset: db_row_lock sold 62 and
53 units of 50 (audit ``oversold``/``not_conserved``).
"""

from __future__ import annotations

import time
from pathlib import Path

import requests

from loadtest.faults.buyers import codes, crowd_in_background, make_buyers, make_sale
from loadtest.faults.order_ids import accepted_figures
from loadtest.faults.redis_outage import sweep_when_stuck
from loadtest.faults.result import Result
from loadtest.faults.rig import Rig, db_orders, wait_drained, wait_for


def staff_token(name: str) -> str:
    from django.contrib.auth import get_user_model

    from loadtest.prepare import ensure_buyers

    get_user_model().objects.get_or_create(username=name, defaults={"is_staff": True})
    return ensure_buyers([name])[0]


def reset_until_done(
    url: str, token: str, sale_id: int, timeout: float = 60.0
) -> tuple[int, float]:
    """POST …/reset/ as staff, retrying 409 (orders still queued) and 429/503; (tries, when)."""
    deadline = time.monotonic() + timeout
    tries = 0
    while time.monotonic() < deadline:
        tries += 1
        response = requests.post(
            f"{url}/api/v1/sales/{sale_id}/reset/",
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        )
        if response.status_code == 200:
            return tries, time.monotonic()
        if response.status_code >= 500 and response.status_code != 503:
            raise RuntimeError(f"reset answered {response.status_code}: {response.text[:300]}")
        time.sleep(0.05)
    raise TimeoutError(f"reset of sale {sale_id} not done after {timeout:.0f}s ({tries} tries)")


def staff_reset_during_sale(
    database_url: str,
    work: Path,
    *,
    strategy: str = "db_row_lock",
    buyers: int = 40,
    stock: int = 15,
    resets: int = 2,
) -> Result:
    """Staff resets the sale ``resets`` times through the API while a crowd (retrying with
    Idempotency-Keys) buys; each placement pauses 50 ms in its critical section so a reset lands
    on a held one. Expect: never oversold, no 5xx, every order accepted after the last reset is
    in the database, audit clean (stock conserved)."""
    result = Result(
        f"staff_reset_during_sale[{strategy}]", f"staff reset ×{resets} while a crowd buys"
    )
    extra = {"SECKILL_CRITICAL_SECTION_DELAY": "0.05", "SECKILL_LOCK_WAIT": "1.0"}
    with Rig(database_url, work, extra=extra) as rig:
        tokens = make_buyers("reset", buyers)
        staff = staff_token("fault-reset-staff")
        sale_id = make_sale(strategy, stock)
        first, second = tokens[: len(tokens) // 2], tokens[len(tokens) // 2 :]
        runner, answers = crowd_in_background(rig.url, first, sale_id, threads=6)
        done: list[float] = []
        tries = 0
        for _ in range(resets):  # each as soon as the crowd has bought again
            sold = sum(a.status in (201, 202) for a in answers)
            wait_for(lambda s=sold: sum(a.status in (201, 202) for a in answers) > s, 60, 0.005)
            n, at = reset_until_done(rig.url, staff, sale_id)
            tries += n
            done.append(at)
        runner.join(600)
        wave, after = crowd_in_background(rig.url, second, sale_id, threads=6)  # new stock
        wave.join(600)
        answers += after
        swept = 0
        if strategy == "redis_atomic":
            swept = sweep_when_stuck(rig, sale_id)
            result.check("queue_drained", wait_drained(rig, sale_id, 30))
        orders = db_orders(sale_id)
        since_last = [a for a in answers if a.at - a.elapsed > done[-1]]
        figures = accepted_figures(since_last, orders)
        result.observed = {
            "answers": codes(answers),
            "resets": len(done),
            "reset_requests": tries,
            "orders": len(orders),
            "stock": stock,
            "accepted_after_last_reset": figures["accepted"],
            "lost_after_last_reset": figures["lost_accepted"],
            "duplicate_ids": accepted_figures(answers, orders)["duplicate_ids"],
            "persisted_by_sweep": swept,
        }
        result.check("never_oversold", len(orders) <= stock)
        result.check("no_5xx", not any(a.status >= 500 and a.status != 503 for a in answers))
        result.check("none_lost_after_last_reset", figures["lost_accepted"] == 0)
        result.check("sold_after_last_reset", figures["accepted"] > 0)
        result.audited(rig, sale_id)
    return result
