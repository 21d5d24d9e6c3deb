"""One line a second while Locust runs, so a long window is never silent.

Read from what the run leaves behind anyway: Locust's stats history (written every second),
the generator's log of accepted answers, and the sale's stock in Redis. Nothing here talks to
the server under test, so watching costs it nothing.
"""

from __future__ import annotations

import csv
from pathlib import Path

import redis

from devtools.redis_cluster import client_for_url
from loadtest.scenarios import ORDER
from seckill.keys import sale_keys


class Progress:
    """``tick(elapsed)`` prints: elapsed, order requests, accepted, units sold / stock, p99."""

    def __init__(self, *, results: Path, redis_url: str, sale_id: int, stock: int) -> None:
        self.results = results
        self.sale_id = sale_id
        self.stock = stock
        # a redis+cluster:// URL gives a cluster client: the stock key's slot decides the node
        self.redis = client_for_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)

    def order_stats(self) -> tuple[int, str]:
        """(order requests so far, p99 of the last 10 s in ms) from Locust's history file."""
        history = self.results / "locust_stats_history.csv"
        last = None
        try:
            with open(history, newline="") as f:
                for row in csv.DictReader(f):
                    if row.get("Name") == ORDER:
                        last = row
        except OSError:
            return 0, "-"
        if last is None:
            return 0, "-"
        p99 = last.get("99%") or "-"
        # Locust reports 0 (or N/A) until its 10 s window has answers in it
        return int(last.get("Total Request Count") or 0), "-" if p99 in ("N/A", "0") else p99

    def accepted(self) -> int:
        """201/202 answers so far (the locustfile writes one line per answer, line-buffered)."""
        total = 0
        for path in self.results.glob("accepted-*.jsonl"):
            try:
                text = path.read_text()
            except OSError:
                continue
            total += text.count('"status": 201') + text.count('"status": 202')
        return total

    def sold(self) -> int | None:
        """Units sold by Redis' stock figure (it leads the database under redis_atomic)."""
        try:
            left = self.redis.get(sale_keys(self.sale_id).stock)
        except redis.RedisError:
            return None
        return None if left is None else self.stock - int(left)

    def line(self, elapsed: float) -> str:
        requests, p99 = self.order_stats()
        sold = self.sold()
        if sold is None:
            sold_text = f"sold ?/{self.stock}"
        else:
            over = f" OVERSOLD {sold - self.stock}" if sold > self.stock else ""
            sold_text = f"sold {sold}/{self.stock}{over}"
        return (
            f"    {elapsed:5.0f} s  requests {requests:>7}  accepted {self.accepted():>6}  "
            f"{sold_text}  p99 {p99} ms"
        )

    def tick(self, elapsed: float) -> None:
        print(self.line(elapsed), flush=True)

    def close(self) -> None:
        self.redis.close()
