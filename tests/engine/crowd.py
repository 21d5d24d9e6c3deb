"""A crowd of buyers for concurrency tests: real threads (and, via ``python -m``, real processes)
calling the same placement service the API calls.

Each buyer tries until it gets an order or a final refusal, retrying ``busy`` like a client
honouring Retry-After would. Outcomes are plain tuples so processes can report them as JSON.

Run as a process: ``python -m tests.engine.crowd SALE_ID START_AT JSON_BUYERS`` prints outcomes.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Buyer:
    user_id: int
    key: str  # Idempotency-Key ("" for none)


@dataclass(frozen=True)
class Outcome:
    user_id: int
    key: str
    code: str  # "ok", or the refusal's code
    order_id: int | None = None


def buy_once(sale_id: int, buyer: Buyer, give_up_after: float = 120.0) -> Outcome:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from seckill.errors import Busy, SeckillError
    from seckill.placement import place_order

    user = get_user_model().objects.get(pk=buyer.user_id)
    deadline = time.monotonic() + give_up_after
    while True:
        try:
            placement = place_order(sale_id, user, 1, buyer.key)
            return Outcome(buyer.user_id, buyer.key, "ok", placement.order.id)
        except Busy:
            if time.monotonic() > deadline:
                return Outcome(buyer.user_id, buyer.key, "busy")
        except SeckillError as refusal:
            return Outcome(buyer.user_id, buyer.key, refusal.code)
        finally:
            connection.close()  # like the end of a request: back to the pool (PostgreSQL)
        time.sleep(random.uniform(0.002, 0.02))


def run_threads(sale_id: int, buyers: Sequence[Buyer], start_at: float | None = None) -> list:
    """One thread per buyer, released together by a barrier (or at ``start_at``, epoch s)."""
    barrier = threading.Barrier(len(buyers))
    outcomes: list[Outcome | BaseException] = [None] * len(buyers)  # type: ignore[list-item]

    def run(i: int, buyer: Buyer) -> None:
        barrier.wait()
        if start_at is not None:
            time.sleep(max(0.0, start_at - time.time()))
        try:
            outcomes[i] = buy_once(sale_id, buyer)
        except BaseException as exc:  # reported, not swallowed: the test fails on it
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i, b)) for i, b in enumerate(buyers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        raise errors[0]
    return outcomes


def run_processes(
    sale_id: int, buyers: Sequence[Buyer], env: dict[str, str], processes: int = 4
) -> list[Outcome]:
    """The buyers dealt over ``processes`` OS processes (``python -m tests.engine.crowd`` with
    ``env``), a thread per buyer, all released at one instant once every process has imported
    Django."""
    from tests.conftest import ROOT

    start_at = time.time() + 4.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.engine.crowd",
                str(sale_id),
                str(start_at),
                json.dumps([b.__dict__ for b in buyers[i::processes]]),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        outcomes += [Outcome(**o) for o in json.loads(out.strip().splitlines()[-1])]
    return outcomes


def main(argv: list[str]) -> int:
    import django

    django.setup()
    sale_id, start_at, raw = int(argv[0]), float(argv[1]), json.loads(argv[2])
    buyers = [Buyer(int(b["user_id"]), b["key"]) for b in raw]
    outcomes = run_threads(sale_id, buyers, start_at=start_at)
    print(json.dumps([o.__dict__ for o in outcomes]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
