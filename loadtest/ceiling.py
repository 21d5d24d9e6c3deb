"""The yardstick rounds of ``python -m loadtest ceiling``: the order path against ping and floor.

Every workload — the two yardsticks, sold-out answers, and each safe strategy on one hot item —
gets a short slice of load in turn, and the rounds repeat (every other one in reverse order), so
a drift of the shared machine (another job, a warming cache) lands on all workloads alike;
each figure is the median over the rounds, and each share the median of the same round's
ratios. One generator for every slice: wrk when installed, else Locust with ``--processes``.
The generator's own CPU time is measured per slice, so the report can say which figures it
bounds instead of the server.
"""

from __future__ import annotations

import json
import shutil
import statistics
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.cpu_account import Meter, machine_ticks, per_answer
from loadtest.runner import (
    ORDER_BODY,
    LoadShape,
    correct_order_count,
    run_locust,
    run_wrk,
    seconds,
)
from loadtest.scenarios import ORDER
from loadtest.server_profile import ServerProfiler

YARDSTICKS = ("ping", "floor")
SOLD_OUT = "soldout"
HOT_STRATEGIES = ("lock", "lock_fenced", "db_row_lock", "redis_atomic")
# A generator thread (wrk) or process (Locust) busier than this is the limit, not the server.
GENERATOR_BOUND = 0.85
# The machine this busy: server and generator compete for the same cores.
MACHINE_SATURATED = 0.95


@dataclass(frozen=True)
class Workload:
    """One kind of request: a yardstick (no sale) or orders on one sale."""

    name: str
    path: str
    sale_id: int | None = None
    strategy: str | None = None  # the sale's strategy, when the name says more (a variant)

    @property
    def orders(self) -> bool:
        return self.sale_id is not None

    @property
    def headline(self) -> str:
        """The figure the goals compare: accepted orders/s for a strategy, answers/s else."""
        return "accepted_rps" if self.orders and self.name != SOLD_OUT else "rps"


# ``lock`` with group commit off (one order per lock hold), on a sale of its own, so students
# see what the batch buys in the same rounds; wrk only (its ``?lock_batch=1`` is a load-test
# server's per-request override, loadtest.lock_batch).
LOCK_BATCH_ONE = "lock_batch1"


def workloads(
    hot_sales: dict[str, int], soldout_sale: int, batch_one_sale: int | None = None
) -> list[Workload]:
    """ping, floor, sold-out answers, then each safe strategy's hot item, in that order (and
    ``lock`` with one order per lock hold after ``lock``, given ``batch_one_sale``)."""
    order = "/api/v1/sales/{}/orders/"
    hot = [Workload(s, order.format(hot_sales[s]), hot_sales[s], s) for s in HOT_STRATEGIES]
    if batch_one_sale is not None:
        path = order.format(batch_one_sale) + "?lock_batch=1"
        hot.insert(1, Workload(LOCK_BATCH_ONE, path, batch_one_sale, "lock"))
    return [
        Workload("ping", "/loadtest/ping"),
        Workload("floor", "/loadtest/floor"),
        Workload(SOLD_OUT, order.format(soldout_sale), soldout_sale),
        *hot,
    ]


class GeneratorMissing(Exception):
    """The generator asked for is not installed; the message says what to do."""


def generator_name(requested: str = "auto") -> str:
    """wrk when installed (or asked for), else Locust."""
    if requested == "auto":
        return "wrk" if shutil.which("wrk") else "locust"
    if requested == "wrk" and not shutil.which("wrk"):
        raise GeneratorMissing(
            "wrk is not installed: apt-get install -y wrk (or --generator locust)"
        )
    return requested


@dataclass
class Slicer:
    """Measures one slice of one workload with the run's generator and settings."""

    url: str
    generator: str
    tokens: list[str]
    slice_duration: str
    connections: int
    wrk_threads: int = 2
    processes: int = 1
    meter: Meter | None = None  # where the CPU goes per answer (loadtest.cpu_account)
    profiler: ServerProfiler | None = None  # py-spy on the web server per slice

    def measure(
        self, workload: Workload, results: Path, duration: str | None = None, counted: bool = True
    ) -> dict[str, Any]:
        """One slice (of ``duration``, default the run's slice) of one workload; only a
        ``counted`` one is profiled."""
        busy_before, total_before = machine_ticks()
        cpu_before = self.meter.snapshot() if self.meter else None
        duration = duration or self.slice_duration
        profiled = self.profiler is not None and counted
        recording = self.profiler.start(workload.name, seconds(duration)) if profiled else None
        if self.generator == "wrk":
            sample = self._wrk(workload, results, duration)
        else:
            sample = self._locust(workload, results, duration)
        if recording is not None:
            ServerProfiler.finish(recording, seconds(duration))
        busy_after, total_after = machine_ticks()
        sample["machine_busy"] = (busy_after - busy_before) / max(1, total_after - total_before)
        if cpu_before is not None:
            answered = round(sample["rps"] * sample["elapsed_s"])
            sample["cpu_ms"] = per_answer(
                cpu_before, self.meter.snapshot(), answered, sample["generator_cpu_s"]
            )
        if not workload.orders:
            sample["accepted_rps"] = None
        return {"workload": workload.name, **sample}

    def _wrk(self, workload: Workload, results: Path, duration: str) -> dict[str, Any]:
        measured = run_wrk(
            self.url,
            workload.path,
            duration,
            self.connections,
            tokens=self.tokens if workload.orders else None,
            threads=self.wrk_threads,
            body=None if workload.name == "ping" else ORDER_BODY,
            record=results if workload.orders else None,
            idempotency_keys=True,
        )
        if measured is None:
            raise RuntimeError("wrk is no longer installed: apt-get install -y wrk")
        return measured

    def _locust(self, workload: Workload, results: Path, duration: str) -> dict[str, Any]:
        scenario, endpoint = {
            "ping": ("ping", "GET /loadtest/ping"),
            "floor": ("floor", "POST /loadtest/floor"),
        }.get(workload.name, ("hot", ORDER))
        data = {"sale_id": workload.sale_id or 0, "tokens": self.tokens, "greedy_tokens": []}
        shape = LoadShape(self.connections, duration, self.connections, self.processes)
        load = run_locust(self.url, data, scenario, shape, results / uuid.uuid4().hex[:8])
        stats = dict(load["endpoints"].get(endpoint) or {"count": 0, "rps": 0.0})
        answered, accepted_rps = sum(load["answers"].values()), load["accepted_rps"]
        if not workload.orders and stats["count"]:  # run_locust did this for orders already
            correct_order_count(stats, load["answers"])
        elif not stats["count"] and answered:
            # The master missed every report (a loaded machine): the answer files are complete.
            stats["rps"] = answered / seconds(duration)
            accepted_rps = load["accepted"] / seconds(duration)
        return {
            "generator": "locust",
            "rps": stats.get("rps", 0.0),
            "accepted": load["accepted"],
            "accepted_rps": accepted_rps,
            "answers": load["answers"],
            **{p: stats.get(p, 0.0) for p in ("p50", "p95", "p99")},
            "socket_errors": stats.get("failures", 0),
            **{k: load[k] for k in ("elapsed_s", "generator_cpu_s", "generator_threads")},
        }


def rounds(
    slicer: Slicer,
    loads: list[Workload],
    count: int,
    out: Path,
    warmup: str | None = None,
    say: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """``count`` rounds over every workload, every other round in reverse; one sample each.

    A ``warmup`` slice of each workload goes first and is not counted: the first requests a
    gunicorn worker serves import and connect what later ones reuse."""
    if warmup and seconds(warmup) > 0:
        say(f"  warm-up: {warmup} of each workload, not counted")
        for workload in loads:
            slicer.measure(workload, out / workload.name, warmup, counted=False)
    samples = []
    for number in range(1, count + 1):
        ordered = loads if number % 2 else loads[::-1]
        for workload in ordered:
            sample = slicer.measure(workload, out / workload.name)
            sample["round"] = number
            samples.append(sample)
            say(
                f"  round {number}/{count} {workload.name:<13} {sample['rps']:8.1f} answered/s"
                f"  p99 {sample['p99']:7.1f} ms  generator {cores(sample):.2f} cores"
            )
    return samples


def cores(sample: dict[str, Any]) -> float:
    """The generator's CPU over its slice, in cores."""
    return sample["generator_cpu_s"] / max(sample["elapsed_s"], 1e-9)


def _median(values: list[float]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def _share(samples: list[dict], name: str, key: str, base: str) -> float | None:
    """Median over rounds of this round's ``key`` over the same round's ``base`` req/s."""
    by_round = {s["round"]: s for s in samples if s["workload"] == base}
    ratios = [
        s[key] / by_round[s["round"]]["rps"]
        for s in samples
        if s["workload"] == name and by_round.get(s["round"], {}).get("rps")
    ]
    return _median(ratios)


def _median_parts(samples: list[dict[str, float]]) -> dict[str, float]:
    """Each part's median over the rounds that measured it."""
    parts = dict.fromkeys(part for sample in samples for part in sample)
    return {part: _median([s.get(part) for s in samples]) for part in parts}


def summarize(samples: list[dict[str, Any]], loads: list[Workload]) -> list[dict[str, Any]]:
    """Per workload: medians over the rounds, shares of ping and floor, generator load."""
    rows = []
    for workload in loads:
        mine = [s for s in samples if s["workload"] == workload.name]
        if not mine:
            continue
        answers: Counter[str] = Counter()
        for s in mine:
            answers.update(s.get("answers", {}))
        generator = _median([cores(s) for s in mine]) or 0.0
        threads = mine[0]["generator_threads"]
        key = workload.headline
        rows.append(
            {
                "workload": workload.name,
                "generator": mine[0]["generator"],
                "rounds": len(mine),
                "rps": _median([s["rps"] for s in mine]),
                "accepted_rps": _median([s["accepted_rps"] for s in mine]),
                "headline": key,
                "share_of_ping": _share(samples, workload.name, key, "ping"),
                "share_of_floor": _share(samples, workload.name, key, "floor"),
                **{p: _median([s[p] for s in mine]) for p in ("p50", "p99")},
                "answers": dict(sorted(answers.items())),
                "socket_errors": sum(s.get("socket_errors", 0) for s in mine),
                "generator_cores": generator,
                "generator_threads": threads,
                "generator_bound": generator / threads >= GENERATOR_BOUND,
                "machine_busy": _median([s["machine_busy"] for s in mine]),
                "cpu_ms": _median_parts([s.get("cpu_ms") or {} for s in mine]),
            }
        )
    return rows


def bounded_by(rows: list[dict[str, Any]]) -> str:
    """One sentence: which figures the generator bounds, and whether the machine was full."""
    bound = [r["workload"] for r in rows if r["generator_bound"]]
    full = [r["workload"] for r in rows if (r["machine_busy"] or 0) >= MACHINE_SATURATED]
    gen = rows[0]["generator"] if rows else "the generator"
    unit = "thread" if gen == "wrk" else "process"
    text = f"generator-bound ({gen} above {GENERATOR_BOUND:.0%} of a core per {unit}): " + (
        ", ".join(bound) if bound else "none"
    )
    if full:
        text += (
            f"; machine CPU at {MACHINE_SATURATED:.0%} or more during: {', '.join(full)} "
            "(server and generator share the cores, so those figures are bounded by both)"
        )
    return text


def gather_accepted(results: Path) -> Path:
    """One directory holding every accepted-order record of a workload's slices (Locust
    writes each slice's under a directory of its own; wrk writes them here already)."""
    lines = [path.read_text() for path in sorted(results.glob("*/accepted-*.jsonl"))]
    if lines:
        (results / "accepted-slices.jsonl").write_text("".join(lines))
    return results


def sell_out(url: str, sale_id: int, token: str, results: Path) -> int:
    """Sell a one-unit sale's unit with one real order, as a flash crowd leaves a sale: the
    sold-out answers measured after it are the ones a crowd gets. Returns the status; the
    accepted order is recorded for the audit, like every other."""
    results.mkdir(parents=True, exist_ok=True)
    key = f"sellout-{uuid.uuid4().hex}"
    request = urllib.request.Request(
        f"{url}/api/v1/sales/{sale_id}/orders/",
        data=ORDER_BODY.encode(),
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
        line = {"order_id": str(body["order_id"]), "status": response.status, "token": token[:12]}
    (results / "accepted-sellout.jsonl").write_text(json.dumps({**line, "key": key}) + "\n")
    return response.status
