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
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

    @property
    def arrival_rate(self) -> float:
        """Arriving users per second: ``spawn_rate``, or everyone within two seconds."""
        return self.spawn_rate or max(1.0, self.users / 2)


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
        str(shape.arrival_rate),
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
    rc, _elapsed, cpu_s = run_generator(cmd, env, results / "locust.log", run_time + 90, progress)
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
        "elapsed_s": run_time,
        "generator_cpu_s": cpu_s,
        "generator_threads": shape.processes,
    }


def run_generator(
    cmd: list[str],
    env: dict[str, str],
    log: Path,
    limit_s: float,
    progress: Callable[[float], None] | None,
) -> tuple[int | None, float, float]:
    """Run a load generator in its own process group until it exits or ``limit_s`` passes
    (then it is stopped), calling ``progress(elapsed)`` about once a second: (its exit code,
    None if stopped; seconds it ran; its CPU seconds)."""
    with generator_cpu() as cpu:
        proc = start_group(cmd, env, log)
        started = time.monotonic()
        rc = None
        try:
            while rc is None and time.monotonic() - started < limit_s:
                try:
                    rc = proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    if progress:
                        progress(time.monotonic() - started)
        finally:
            stop_group(proc)
        elapsed = time.monotonic() - started
    return rc, elapsed, cpu["cpu_s"]


def run_crowd(
    url: str | list[str],
    data: dict[str, Any],
    scenario: str,
    shape: LoadShape,
    results: Path,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """The ``flash`` scenario from :mod:`loadtest.crowd` (one asyncio process, every buyer
    on its own connection, arriving evenly within ``shape.users / spawn_rate`` seconds);
    the same result as :func:`run_locust`, so reports and the audit take either."""
    if scenario != "flash":
        raise ValueError(f"the crowd generator runs the flash scenario only, not {scenario!r}")
    urls = [url] if isinstance(url, str) else list(url)
    results.mkdir(parents=True, exist_ok=True)
    data_file = results / "crowd-data.json"
    data_file.write_text(json.dumps(data))
    run_time = seconds(shape.duration)
    window = shape.users / shape.arrival_rate
    cmd = [sys.executable, "-m", "loadtest.crowd", "--data", str(data_file)]
    cmd += ["--results", str(results), "--users", str(shape.users)]
    cmd += ["--window", f"{window:g}", "--deadline", f"{run_time:g}"]
    cmd += [arg for target in urls for arg in ("--host", target)]
    env = {**_plain_env(), "PYTHONPATH": str(ROOT)}
    rc, elapsed, cpu_s = run_generator(cmd, env, results / "crowd.log", run_time + 30, progress)
    stats_file = results / "crowd-stats.json"
    if rc or not stats_file.exists():
        log = (results / "crowd.log").read_text()[-3000:]
        raise RuntimeError(f"the crowd wrote no stats (rc={rc}):\n{log}")
    order = json.loads(stats_file.read_text())
    answers = gather_answers(results)
    return {
        "generator": "crowd",
        "endpoints": {ORDER: order},
        "answers": answers,
        "nodes": gather_answers(results, "nodes"),
        **accepted_rate(order, answers),
        "elapsed_s": elapsed,  # it ends when every buyer is answered
        "generator_cpu_s": cpu_s,
        "generator_threads": 1,
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
local path, body, record, nonce = "%(path)s", '%(body)s', "%(record)s", "%(nonce)s"
local keyed = %(keyed)s
local threads, n = {}, 0
function setup(thread)
  n = n + 1
  thread:set("offset", n * 7919)
  thread:set("index", n)
  table.insert(threads, thread)
end
function init(args)
  accepted, sent, conflict, busy, unavailable, other = 0, 0, 0, 0, 0, 0
  if record ~= "" then
    log = io.open(string.format("%%s/accepted-wrk-%%s-%%d.jsonl", record, nonce, index), "a")
  end
end
function request()
  sent = sent + 1
  if body == "" then return wrk.format("GET", path) end
  local headers = {["Content-Type"] = "application/json"}
  if #tokens > 0 then
    headers["Authorization"] = "Token " .. tokens[(sent + offset) %% #tokens + 1]
    if keyed then
      headers["Idempotency-Key"] = string.format("wrk-%%s-%%d-%%d", nonce, index, sent)
    end
  end
  return wrk.format("POST", path, headers, body)
end
function response(status, headers, body)
  if status == 200 or status == 201 or status == 202 then
    accepted = accepted + 1
    local order_id = log and string.match(body, '"order_id"%%s*:%%s*"?(%%d+)')
    if order_id then
      -- an answer cannot be tied to its request here: the key names the order, so the audit
      -- checks that every accepted id is in the database (lost orders) and nothing else
      log:write(string.format('{"order_id": "%%s", "status": %%d, "token": "wrk", ' ..
        '"key": "wrk-order-%%s"}\\n', order_id, status, order_id))
    end
  elseif status == 409 then conflict = conflict + 1
  elseif status == 429 then busy = busy + 1
  elseif status == 503 then unavailable = unavailable + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local t = {accepted = 0, conflict = 0, busy = 0, unavailable = 0, other = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(t) do t[name] = t[name] + thread:get(name) end
  end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "accepted": %%d, ' ..
    '"409": %%d, "429": %%d, "503": %%d, "other": %%d, ' ..
    '"p50": %%.3f, "p95": %%.3f, "p99": %%.3f, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, t.accepted, t.conflict, t.busy, t.unavailable, t.other,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout))
end
"""
ORDER_BODY = '{"quantity": 1}'


@contextmanager
def generator_cpu() -> Iterator[dict[str, float]]:
    """CPU seconds (user + system) of the child processes that end inside the block — the
    load generator's own, so a report can say when the generator, not the server, is the
    limit. ``used["cpu_s"]`` is set when the block ends."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    used: dict[str, float] = {}
    try:
        yield used
    finally:
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used["cpu_s"] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def run_wrk(
    url: str,
    path: str,
    duration: str,
    connections: int,
    tokens: list[str] | None = None,
    threads: int = 2,
    *,
    body: str | None = None,
    record: Path | None = None,
    idempotency_keys: bool = False,
) -> dict[str, Any] | None:
    """A second, lighter generator (wrk) for ceilings; None when wrk is not installed.

    With ``tokens`` it POSTs one-unit orders, rotating buyers (with ``idempotency_keys``, each
    with an Idempotency-Key of its own, as real clients send); with ``body`` alone it POSTs
    that JSON; otherwise it GETs ``path``. With ``record`` (a directory) every accepted order
    id is written there for the audit.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    lua_tokens = ", ".join(f'"{t}"' for t in tokens or [])
    fields = {
        "tokens": lua_tokens,
        "path": path,
        "body": body or (ORDER_BODY if tokens else ""),
        "record": str(record or ""),
        "nonce": uuid.uuid4().hex[:12],
        "keyed": "true" if idempotency_keys else "false",
    }
    if record:
        record.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % fields)
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
        with generator_cpu() as cpu:
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
    answers = {"2xx": raw["accepted"], **{k: raw[k] for k in ("409", "429", "503", "other")}}
    return {
        "generator": "wrk",
        "rps": raw["requests"] / elapsed,
        "accepted": raw["accepted"],
        "accepted_rps": raw["accepted"] / elapsed,
        "answers": {k: v for k, v in answers.items() if v},
        "p50": raw["p50"],
        "p95": raw["p95"],
        "p99": raw["p99"],
        "socket_errors": raw["socket_errors"],
        "elapsed_s": elapsed,
        "generator_cpu_s": cpu["cpu_s"],
        "generator_threads": threads,
    }
