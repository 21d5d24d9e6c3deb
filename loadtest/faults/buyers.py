"""Buyers over HTTP: one placement, a well-behaved retrying buyer, and a crowd of them."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import requests


def make_buyers(prefix: str, n: int) -> list[str]:
    """API tokens of ``n`` buyers (created through the ORM; see loadtest.prepare)."""
    from loadtest.prepare import ensure_buyers

    return ensure_buyers([f"fault-{prefix}-{i:04d}" for i in range(n)])


def make_sale(strategy: str, stock: int, per_user_limit: int = 1) -> int:
    """A live sale with its Redis mirror loaded (loadtest.prepare.create_sale)."""
    from loadtest.prepare import create_sale

    return create_sale(strategy, stock, per_user_limit)


@dataclass
class Answer:
    status: int  # 0: no HTTP answer (connection refused/reset, client timeout)
    code: str
    order_id: str | None
    elapsed: float
    at: float  # time.monotonic() when the answer came


def place(
    url: str,
    token: str,
    sale_id: int,
    key: str | None = None,
    timeout: float = 30.0,
    session: requests.Session | None = None,
) -> Answer:
    """One POST .../orders/ for one unit; never raises."""
    headers = {"Authorization": f"Token {token}"}
    if key:
        headers["Idempotency-Key"] = key
    started = time.monotonic()
    try:
        response = (session or requests).post(
            f"{url}/api/v1/sales/{sale_id}/orders/",
            json={"quantity": 1},
            headers=headers,
            timeout=timeout,
        )
        body = response.json() if response.content else {}
        status, code = response.status_code, body.get("error", {}).get("code", "ok")
        order_id = body.get("order_id")
    except (requests.RequestException, ValueError) as exc:
        status, code, order_id = 0, type(exc).__name__, None
    now = time.monotonic()
    return Answer(status, code, order_id, now - started, now)


FINAL = {"ok", "sold_out", "limit_reached", "not_live"}


def buy_until_final(
    url: str,
    token: str,
    sale_id: int,
    give_up_after: float = 60.0,
    answers: list[Answer] | None = None,
) -> Answer:
    """A well-behaved buyer: one Idempotency-Key, retried through 429/503/lost connections
    until a final answer (an order, sold out, limit reached), as Retry-After asks."""
    key = uuid.uuid4().hex
    deadline = time.monotonic() + give_up_after
    with requests.Session() as session:
        while True:
            answer = place(url, token, sale_id, key, session=session)
            if answers is not None:
                answers.append(answer)
            if answer.code in FINAL or time.monotonic() > deadline:
                return answer
            time.sleep(0.2 if answer.status == 429 else 0.5)


def crowd(url: str, tokens: list[str], sale_id: int, threads: int = 8) -> list[Answer]:
    """Every token buys until a final answer, ``threads`` at a time; every answer returned."""
    todo: queue.Queue[str] = queue.Queue()
    for token in tokens:
        todo.put(token)
    answers: list[Answer] = []

    def work() -> None:
        while True:
            try:
                token = todo.get_nowait()
            except queue.Empty:
                return
            buy_until_final(url, token, sale_id, answers=answers)

    pool = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=600)
    return answers


def crowd_in_background(
    url: str,
    tokens: list[str],
    sale_id: int,
    threads: int,
) -> tuple[threading.Thread, list[Answer]]:
    """:func:`crowd` in a started thread, so the fault can be injected while it buys; join the
    thread, then read the answers."""
    answers: list[Answer] = []
    runner = threading.Thread(
        target=lambda: answers.extend(crowd(url, tokens, sale_id, threads=threads))
    )
    runner.start()
    return runner, answers


def accepted_figures(answers: list[Answer], orders: dict[str, int]) -> dict[str, int]:
    """Counted per answer, not per distinct id: two 201/202s with one id are a duplicate, and
    at most one of them can be a row, so the other counts as lost too."""
    accepted = [a.order_id for a in answers if a.status in (201, 202)]
    distinct = set(accepted)
    return {
        "accepted": len(accepted),
        "duplicate_ids": len(accepted) - len(distinct),
        "lost_accepted": len(accepted) - len(distinct & set(orders)),
        "http_5xx": sum(1 for a in answers if a.status >= 500 and a.status != 503),
    }


def codes(answers: list[Answer]) -> dict[str, int]:
    return dict(Counter(f"{a.status} {a.code}" for a in answers))
