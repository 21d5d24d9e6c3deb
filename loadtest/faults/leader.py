"""The reconciler leader's process is SIGKILLed: another node takes over within the lease."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from loadtest.faults.buyers import make_sale
from loadtest.faults.result import Result
from loadtest.faults.rig import SLACK, Rig, wait_for
from loadtest.server import ROOT

NODE = """
import json, os, sys, time
import django
django.setup()
from seckill.reconcile import leader_lease
from seckill.tasks import reconcile_task
lease = leader_lease()
while True:
    out = reconcile_task.run()
    print(json.dumps({"pid": os.getpid(), "t": time.monotonic(), "leader": out["leader"],
                      "term": out.get("term"), "until": lease.valid_until}), flush=True)
    time.sleep(0.1)
"""


class Nodes:
    """Reconciler node processes on the rig, and the lines they print (one per round)."""

    def __init__(self, rig: Rig, env: dict[str, str]) -> None:
        self.rig, self.env = rig, env
        self.lines: queue.Queue[dict] = queue.Queue()
        self.log: list[dict] = []  # every line read so far

    def spawn(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", NODE],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.rig.extra_procs.append(proc)
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def leader(self, timeout: float, exclude: int | None = None) -> dict | None:
        """The next line of a node that leads (other than ``exclude``), within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                entry = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.log.append(entry)
            if entry["leader"] and entry["pid"] != exclude:
                return entry
        return None

    def drain(self) -> list[dict]:
        """Every line printed so far."""
        while True:
            try:
                self.log.append(self.lines.get_nowait())
            except queue.Empty:
                return self.log


def term_spans(log: list[dict]) -> tuple[dict[int, list[float]], dict[int, set[int]]]:
    """Per term: the time span its leader believed it led (first line to last validity
    deadline), and the pids that claimed it."""
    spans: dict[int, list[float]] = {}
    owners: dict[int, set[int]] = {}
    for entry in log:
        if entry["leader"]:
            span = spans.setdefault(entry["term"], [entry["t"], entry["until"]])
            span[0], span[1] = min(span[0], entry["t"]), max(span[1], entry["until"])
            owners.setdefault(entry["term"], set()).add(entry["pid"])
    return spans, owners


def leader_killed(
    database_url: str, work: Path, *, interval: float = 0.5, rounds: int = 2
) -> Result:
    """The reconciler's leader process is SIGKILLed; another node takes over within the lease
    (3 x SECKILL_RECONCILE_INTERVAL) and two nodes never lead at once (their validity windows,
    on the machine-wide monotonic clock, never overlap). Repeated ``rounds`` times with a fresh
    node each time, and the new leader repairs drift injected after the takeover."""
    result = Result("leader_killed", "reconciler leader process SIGKILLed")
    ttl = 3 * interval
    from seckill.keys import sale_keys

    with Rig(database_url, work) as rig:
        sale_id = make_sale("lock", 5)
        stock_key = sale_keys(sale_id).stock
        nodes = Nodes(rig, {**rig.env, "SECKILL_RECONCILE_INTERVAL": str(interval)})
        nodes.spawn()
        nodes.spawn()
        current = nodes.leader(60)
        takeovers: list[float] = []
        repaired = True
        for _ in range(rounds):
            if current is None:
                break
            nodes.leader(2 * ttl)  # let both nodes run side by side for a while
            victim = current["pid"]
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            nodes.spawn()
            current = nodes.leader(ttl + SLACK, exclude=victim)
            if current is None:
                break
            takeovers.append(current["t"] - killed_at)
            rig.redis().set(stock_key, 999, keepttl=True)  # drift
            fixed = wait_for(lambda: rig.redis().get(stock_key) == b"5", 20, 0.1)
            repaired = repaired and bool(fixed)
        spans, owners = term_spans(nodes.drain())
        terms = sorted(spans)
        overlaps = [
            (a, b) for a, b in zip(terms, terms[1:], strict=False) if spans[a][1] > spans[b][0]
        ]
        result.observed = {
            "lease_s": ttl,
            "takeover_after_s": [round(t, 2) for t in takeovers],
            "terms": terms,
            "overlapping_terms": overlaps,
        }
        result.check("took_over_each_time", len(takeovers) == rounds)
        result.check("within_lease", all(t <= ttl + SLACK for t in takeovers))
        result.check("one_node_per_term", all(len(p) == 1 for p in owners.values()))
        result.check("never_two_leaders", not overlaps)
        result.check("new_leader_repairs_drift", repaired)
        result.audited(rig, sale_id)
    return result
