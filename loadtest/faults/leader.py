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
from seckill.reconcile import leader_lease, reconcile_task
lease = leader_lease()
while True:
    out = reconcile_task.run()
    print(json.dumps({"pid": os.getpid(), "t": time.monotonic(), "leader": out["leader"],
                      "term": out.get("term"), "until": lease.valid_until}), flush=True)
    time.sleep(0.1)
"""


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
        env = {**rig.env, "SECKILL_RECONCILE_INTERVAL": str(interval)}
        lines: queue.Queue[dict] = queue.Queue()
        log: list[dict] = []
        nodes: dict[int, subprocess.Popen] = {}

        def spawn() -> None:
            proc = subprocess.Popen(
                [sys.executable, "-c", NODE],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
            rig.extra_procs.append(proc)
            nodes[proc.pid] = proc

            def read() -> None:
                for line in proc.stdout:
                    with contextlib.suppress(ValueError):
                        lines.put(json.loads(line))

            threading.Thread(target=read, daemon=True).start()

        def leader(timeout: float, exclude: int | None = None) -> dict | None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    entry = lines.get(timeout=0.2)
                except queue.Empty:
                    continue
                log.append(entry)
                if entry["leader"] and entry["pid"] != exclude:
                    return entry
            return None

        spawn()
        spawn()
        current = leader(60)
        takeovers: list[float] = []
        repaired = True
        for _ in range(rounds):
            if current is None:
                break
            leader(2 * ttl)  # let both nodes run side by side for a while
            victim = current["pid"]
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            spawn()
            current = leader(ttl + SLACK, exclude=victim)
            if current is None:
                break
            takeovers.append(current["t"] - killed_at)
            rig.redis().set(sale_keys(sale_id).stock, 999, keepttl=True)  # drift
            fixed = wait_for(lambda: rig.redis().get(sale_keys(sale_id).stock) == b"5", 20, 0.1)
            repaired = repaired and bool(fixed)
        while True:  # everything printed so far
            try:
                log.append(lines.get_nowait())
            except queue.Empty:
                break
        spans: dict[int, list[float]] = {}
        owners: dict[int, set[int]] = {}
        for entry in log:
            if entry["leader"]:
                span = spans.setdefault(entry["term"], [entry["t"], entry["until"]])
                span[0], span[1] = min(span[0], entry["t"]), max(span[1], entry["until"])
                owners.setdefault(entry["term"], set()).add(entry["pid"])
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
