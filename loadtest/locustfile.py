"""Locust scenarios for a flash sale (FastHttpUser, loopback only).

Configured by environment variables that ``python -m loadtest`` sets:

- ``LOADTEST_DATA``: JSON written by :mod:`loadtest.prepare` (sale id, buyer and greedy tokens);
  buyers are registered before the run, never inside the measured window.
- ``LOADTEST_RESULTS``: a directory where each Locust process writes what the audit needs and
  Locust's own stats cannot say: every accepted order (id, buyer, Idempotency-Key) and the
  count of each answer (201, 202, 409 sold_out, 429 busy ...).
- ``LOADTEST_PROCESSES``: how many Locust worker processes share the token list.
- ``LOADTEST_HOSTS``: comma-separated base URLs of several web nodes serving one sale (default:
  Locust's ``--host`` alone). Each user is given one by its index, so the crowd is split evenly
  between the nodes, and every order answer is recorded with the node that gave it.

Scenarios are user classes (pass their names on Locust's command line):

- :class:`FlashBuyer`: arrives once, tries once; a 429 ``busy`` is honoured (Retry-After) up to
  five times with the same Idempotency-Key — still one purchase intent.
- :class:`RetryStormBuyer`: retries every 429/503/connection error at once with short
  exponential backoff and jitter, ignoring Retry-After: the crowd that hammers the button.
- :class:`GreedyBuyer`: many connections share one account and replay a few Idempotency-Keys,
  trying to get past the per-user limit; the audit checks replays returned one order per key.
- :class:`BrowseBuyer`: lists sales, polls the stock, buys once, then polls its order.
- :class:`HotBuyer`: buys again and again with fresh keys (per-user limit and stock set high):
  accepted orders per second on one hot item.
- :class:`PingUser`: the trivial JSON view, the ceiling the order path is compared with.
- :class:`FloorUser`: the one-Redis-round-trip DRF view (``/loadtest/floor``), the floor under
  any order path that must consult Redis once.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import gevent
import locust.stats
from locust import FastHttpUser, between, constant, events, task
from locust.runners import MasterRunner

from loadtest.scenarios import ORDER, answer_label

# The stats history (written every second) is flushed every 5 s by default: flush each write,
# so the runner's once-a-second progress line reads current figures.
locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 0.5

DATA: dict[str, Any] = {}
if os.environ.get("LOADTEST_DATA"):
    DATA = json.loads(Path(os.environ["LOADTEST_DATA"]).read_text())
RESULTS = Path(os.environ.get("LOADTEST_RESULTS", "."))
PROCESSES = max(1, int(os.environ.get("LOADTEST_PROCESSES", "1")))
HOSTS = [host for host in os.environ.get("LOADTEST_HOSTS", "").split(",") if host]

# What this process saw: answer counts (in all and per node), and the accepted orders (written
# as they come).
answers: Counter[str] = Counter()
node_answers: Counter[str] = Counter()
_accepted_file = None
_sequence = itertools.count()


def _accepted_log():
    global _accepted_file
    if _accepted_file is None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        # line-buffered: the runner's progress line counts the accepted answers as they come
        path = RESULTS / f"accepted-{os.getpid()}.jsonl"
        _accepted_file = open(path, "a", buffering=1)  # noqa: SIM115
    return _accepted_file


@events.quitting.add_listener
def _write_answers(environment, **_kwargs) -> None:
    """Each process leaves its answer counts behind; the runner sums them."""
    if isinstance(environment.runner, MasterRunner) or not answers:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"answers-{os.getpid()}.json").write_text(json.dumps(dict(answers)))
    (RESULTS / f"nodes-{os.getpid()}.json").write_text(json.dumps(dict(node_answers)))
    if _accepted_file is not None:
        _accepted_file.close()


class NodeUser(FastHttpUser):
    """A user with an index unique across Locust processes, and the web node it talks to."""

    abstract = True

    def __init__(self, environment) -> None:
        worker = getattr(environment.runner, "worker_index", 0) or 0
        self.index = worker + next(_sequence) * PROCESSES
        if HOSTS:  # before FastHttpUser builds its session on self.host
            self.host = HOSTS[self.index % len(HOSTS)]
        super().__init__(environment)


class Buyer(NodeUser):
    """A registered buyer holding an API token; subclasses decide how to shop."""

    abstract = True
    tokens_key = "tokens"

    def on_start(self) -> None:
        tokens = DATA[self.tokens_key]
        self.token = tokens[self.index % len(tokens)]
        self.sale_id = DATA["sale_id"]
        self.headers = {"Authorization": f"Token {self.token}"}

    def place(self, key: str, quantity: int = 1) -> tuple[int, dict | None]:
        """One POST; 2xx/409/429 are answers, not failures, and every answer is counted."""
        headers = {**self.headers, "Idempotency-Key": key}
        with self.client.post(
            f"/api/v1/sales/{self.sale_id}/orders/",
            json={"quantity": quantity},
            headers=headers,
            name=ORDER,
            catch_response=True,
        ) as response:
            status = response.status_code or 0
            self.retry_after = response.headers.get("Retry-After") if status == 429 else None
            try:
                body = response.json() if response.text else None
            except ValueError:
                body = None
            answers[answer_label(status, body)] += 1
            node_answers[self.host] += 1
            if status in (200, 201, 202) and body and "order_id" in body:
                line = {
                    "order_id": str(body["order_id"]),
                    "status": status,
                    "token": self.token[:12],
                    "key": key,
                    "node": self.host,
                }
                _accepted_log().write(json.dumps(line) + "\n")
                response.success()
            elif status in (409, 429):
                response.success()
            else:
                response.failure(f"unexpected {status}: {(response.text or '')[:120]}")
        return status, body

    def purchase(self, key: str, *, attempts: int, storm: bool) -> tuple[int, dict | None]:
        """Try until a definitive answer: 429/503/0 are retried with the same key."""
        status, body = 0, None
        for attempt in range(attempts):
            status, body = self.place(key)
            if status not in (0, 429, 503):
                break
            if storm:  # exponential backoff with full jitter, Retry-After ignored
                gevent.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))
            else:
                gevent.sleep(float(self.retry_after or 1) * random.uniform(0.5, 1.5))
        return status, body


class OneShot(Buyer):
    """A buyer who shops once and is then done for the rest of the run."""

    abstract = True
    wait_time = constant(3600)

    def on_start(self) -> None:
        super().on_start()
        self.done = False

    @task
    def shop(self) -> None:
        if not self.done:
            self.done = True
            self.shop_once()

    def shop_once(self) -> None:
        raise NotImplementedError


class FlashBuyer(OneShot):
    weight = 10

    def shop_once(self) -> None:
        self.purchase(f"flash-{uuid.uuid4().hex}", attempts=6, storm=False)


class RetryStormBuyer(OneShot):
    weight = 5

    def shop_once(self) -> None:
        self.purchase(f"storm-{uuid.uuid4().hex}", attempts=12, storm=True)


class BrowseBuyer(OneShot):
    weight = 3

    def shop_once(self) -> None:
        self.client.get("/api/v1/sales/", name="GET /api/v1/sales/")
        for _ in range(random.randint(1, 4)):  # watch the stock before deciding
            self.client.get(
                f"/api/v1/sales/{self.sale_id}/",
                name="GET /api/v1/sales/[id]/",
                headers=self.headers,
            )
            gevent.sleep(random.uniform(0.1, 0.5))
        status, body = self.purchase(f"browse-{uuid.uuid4().hex}", attempts=4, storm=False)
        if status in (201, 202) and body:
            for _ in range(3):  # a 202 order is visible by id before it reaches the database
                gevent.sleep(random.uniform(0.2, 0.6))
                self.client.get(
                    f"/api/v1/orders/{body['order_id']}/",
                    name="GET /api/v1/orders/[id]/",
                    headers=self.headers,
                )


class GreedyBuyer(Buyer):
    """One of many connections of the same account, replaying a handful of keys."""

    fixed_count = int(os.environ.get("LOADTEST_GREEDY_CONNECTIONS", "20"))
    tokens_key = "greedy_tokens"
    wait_time = between(0.0, 0.05)
    max_attempts = 40

    def on_start(self) -> None:
        super().on_start()
        self.attempts = 0
        # Keys are scoped to the sale: the same key on another sale would be a new order.
        self.keys = [f"greedy-{self.sale_id}-{n}" for n in range(3 * DATA["per_user_limit"])]

    @task
    def grab(self) -> None:
        if self.attempts >= self.max_attempts:
            gevent.sleep(3600)
            return
        self.attempts += 1
        self.place(random.choice(self.keys))


class HotBuyer(Buyer):
    """Sustained demand on one item: every request a new purchase."""

    weight = 1
    wait_time = constant(0)

    @task
    def buy(self) -> None:
        self.place(f"hot-{uuid.uuid4().hex}")


class Yardstick(NodeUser):
    """A yardstick view at full speed; its answers are counted like orders are, so the
    runner's figures survive a master that missed its workers' last stats reports."""

    abstract = True
    wait_time = constant(0)

    def count(self, response) -> None:
        answers[str(response.status_code or 0)] += 1


class PingUser(Yardstick):
    weight = 1

    @task
    def ping(self) -> None:
        self.count(self.client.get("/loadtest/ping", name="GET /loadtest/ping"))


class FloorUser(Yardstick):
    weight = 1

    @task
    def floor(self) -> None:
        body = {"quantity": 1}
        self.count(self.client.post("/loadtest/floor", json=body, name="POST /loadtest/floor"))
