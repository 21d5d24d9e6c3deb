"""Orchestration: prepare a sale, run Locust (or wrk) headless against it, audit, summarise.

Every step that needs Django runs as a subprocess with the servers' environment, so the runner
itself imports no settings and can drive any database/Redis pair; every process it starts is in
its own process group and stopped in a ``finally``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.scenarios import ORDER, SCENARIOS
from loadtest.server import ROOT, start_group, stop_group

LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
PERCENTILES = ("50%", "95%", "99%")


def seconds(duration: str | float) -> float:
    """'30s', '2m', '1m30s' or a number of seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?", duration.strip())
    if not parts or not any(parts.groups()):
        raise ValueError(f"not a duration: {duration!r} (use e.g. 30s, 2m, 1m30s)")
    return int(parts.group(1) or 0) * 60 + float(parts.group(2) or 0)


def django_step(module: str, args: list[str], env: dict[str, str], timeout: float) -> None:
    """Run ``python -m loadtest.<module>`` with the servers' environment; raise on failure."""
    done = subprocess.run(
        [sys.executable, "-m", f"loadtest.{module}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode:
        raise RuntimeError(f"loadtest.{module} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def prepare(
    env: dict[str, str],
    work: Path,
    *,
    users: int,
    strategies: list[str],
    stock: int,
    per_user_limit: int = 1,
    migrate: bool = True,
    greedy_accounts: int = 1,
) -> dict[str, Any]:
    """Buyers with tokens and one fresh sale per strategy (see loadtest.prepare)."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "prepared.json"
    args = [
        "--users",
        str(users),
        "--greedy-accounts",
        str(greedy_accounts),
        "--stock",
        str(stock),
        "--per-user-limit",
        str(per_user_limit),
        "--out",
        str(out),
    ]
    args += [a for s in strategies for a in ("--strategy", s)]
    django_step("prepare", args + (["--migrate"] if migrate else []), env, timeout=300)
    return json.loads(out.read_text())


def audit(env: dict[str, str], sale_id: int, results: Path, drain_timeout: float = 60) -> dict:
    out = results / "audit.json"
    django_step(
        "audit",
        [
            "--sale",
            str(sale_id),
            "--results",
            str(results),
            "--out",
            str(out),
            "--drain-timeout",
            str(drain_timeout),
        ],
        env,
        timeout=2 * drain_timeout + 120,
    )
    return json.loads(out.read_text())


def endpoint_stats(csv_path: Path) -> dict[str, dict[str, float]]:
    """Per endpoint from Locust's ``_stats.csv``: count, failures, rps, p50/p95/p99 (ms)."""
    stats = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":  # a sum over unlike requests; per endpoint only
                continue
            stats[row["Name"]] = {
                "count": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": float(row["Requests/s"]),
                **{f"p{p[:-1]}": float(row[p] or 0) for p in PERCENTILES},
            }
    return stats


def gather_answers(results: Path, kind: str = "answers") -> dict[str, int]:
    """The per-process counts of one kind (``answers``: by answer; ``nodes``: by web node)."""
    total: Counter[str] = Counter()
    for path in results.glob(f"{kind}-*.json"):
        total.update(json.loads(path.read_text()))
    return dict(sorted(total.items()))


@dataclass
class LoadShape:
    """How hard and how long: users, arrival rate (users/s), duration, generator processes."""

    users: int
    duration: str = "30s"
    spawn_rate: float | None = None  # default: everyone within two seconds
    processes: int = 1
    greedy_connections: int = 20


def run_locust(
    url: str | list[str],
    data: dict[str, Any],
    scenario: str,
    shape: LoadShape,
    results: Path,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Locust headless against ``url``; bounded by ``--run-time`` and by a hard timeout.
    A list of URLs splits the crowd between those web nodes (one each by user index).
    ``progress(elapsed_seconds)`` is called about once a second while it runs."""
    urls = [url] if isinstance(url, str) else list(url)
    for target in urls:
        if not target.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise ValueError(f"load only ever targets loopback, not {target}")
    results.mkdir(parents=True, exist_ok=True)
    data_file = results / "locust-data.json"
    data_file.write_text(json.dumps(data))
    run_time = seconds(shape.duration)
    spawn_rate = shape.spawn_rate or max(1.0, shape.users / 2)
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        urls[0],
        "-u",
        str(shape.users),
        "-r",
        str(spawn_rate),
        "--run-time",
        f"{run_time:g}s",
        "--stop-timeout",
        "0",
        "--csv",
        str(results / "locust"),
        "--csv-full-history",  # per-endpoint figures every second, for the progress line
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if shape.processes > 1:
        cmd += ["--processes", str(shape.processes)]
    cmd += SCENARIOS[scenario]
    env = {
        **_plain_env(),
        "PYTHONPATH": str(ROOT),
        "LOADTEST_DATA": str(data_file),
        "LOADTEST_RESULTS": str(results),
        "LOADTEST_PROCESSES": str(shape.processes),
        "LOADTEST_GREEDY_CONNECTIONS": str(shape.greedy_connections),
        "LOADTEST_HOSTS": ",".join(urls) if len(urls) > 1 else "",
    }
    proc = start_group(cmd, env, results / "locust.log")
    started = time.monotonic()
    rc = None
    try:
        while rc is None and time.monotonic() - started < run_time + 90:
            try:
                rc = proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                if progress:
                    progress(time.monotonic() - started)
    finally:
        stop_group(proc)
    stats_csv = results / "locust_stats.csv"
    if not stats_csv.exists():
        log = (results / "locust.log").read_text()[-3000:]
        raise RuntimeError(f"locust wrote no stats (rc={rc}):\n{log}")
    endpoints = endpoint_stats(stats_csv)
    answers = gather_answers(results)
    correct_order_count(endpoints.get(ORDER), answers)
    return {
        "generator": "locust",
        "endpoints": endpoints,
        "answers": answers,
        "nodes": gather_answers(results, "nodes"),
        **accepted_rate(endpoints.get(ORDER), answers),
    }


def correct_order_count(order: dict | None, answers: dict[str, int]) -> None:
    """With ``--processes``, Locust's master can miss its workers' last stats reports; the
    per-process answer files are complete, so the order count and rate are scaled to them."""
    answered = sum(answers.values())
    if order and answered > order["count"] > 0:
        order["rps"] *= answered / order["count"]
        order["locust_count"], order["count"] = order["count"], answered


def accepted_rate(order: dict | None, answers: dict[str, int]) -> dict[str, float]:
    """Accepted orders per second: the order rate times the accepted share of answers."""
    accepted = answers.get("201", 0) + answers.get("202", 0)
    total = sum(answers.values())
    rps = order["rps"] if order else 0.0
    return {"accepted": accepted, "accepted_rps": rps * accepted / total if total else 0.0}


def _plain_env() -> dict[str, str]:
    """The generator's environment: ours, minus anything that would point it at Django."""
    return {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}


WRK_SCRIPT = """
local tokens = {%(tokens)s}
local threads, n = {}, 0
function setup(thread)
  n = n + 1
  thread:set("offset", n * 7919)
  table.insert(threads, thread)
end
function init(args)
  accepted, sent = 0, 0
end
function request()
  sent = sent + 1
  if #tokens == 0 then return wrk.format("GET", "%(path)s") end
  local token = tokens[(sent + offset) %% #tokens + 1]
  return wrk.format("POST", "%(path)s", {["Authorization"] = "Token " .. token,
    ["Content-Type"] = "application/json"}, '{"quantity": 1}')
end
function response(status, headers, body)
  if status == 200 or status == 201 or status == 202 then accepted = accepted + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("accepted") end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "accepted": %%d, ' ..
    '"p50": %%.3f, "p95": %%.3f, "p99": %%.3f, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, total, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout))
end
"""


def run_wrk(
    url: str,
    path: str,
    duration: str,
    connections: int,
    tokens: list[str] | None = None,
    threads: int = 2,
) -> dict[str, Any] | None:
    """A second, lighter generator (wrk) for ceilings; None when wrk is not installed.

    With ``tokens`` it POSTs one-unit orders, rotating buyers; otherwise it GETs ``path``.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    lua_tokens = ", ".join(f'"{t}"' for t in tokens or [])
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"tokens": lua_tokens, "path": path})
    cmd = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds(duration):g}s",
        "--timeout",
        "5s",
        "-s",
        script.name,
        url + path,
    ]
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=seconds(duration) + 60,
            start_new_session=True,
        )
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    elapsed = raw["duration_us"] / 1e6
    return {
        "generator": "wrk",
        "rps": raw["requests"] / elapsed,
        "accepted": raw["accepted"],
        "accepted_rps": raw["accepted"] / elapsed,
        "p50": raw["p50"],
        "p95": raw["p95"],
        "p99": raw["p99"],
        "socket_errors": raw["socket_errors"],
    }
