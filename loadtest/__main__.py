"""``python -m loadtest run|compare``: a real flash crowd against a real server, then the audit.

    python -m loadtest run --strategy lock --users 2000 --stock 500 --duration 30s
    python -m loadtest compare                      # every strategy, same scenario, one report

Both start their own gunicorn + Celery worker on a free loopback port, against PostgreSQL
(database ``seckill_load``, created if missing) when 127.0.0.1:5432 answers, else SQLite, and a
private Redis unless ``--redis-url`` is given. Results go under ``reports/``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loadtest import report
from loadtest.preflight import PreflightError, preflight
from loadtest.progress import Progress
from loadtest.runner import LoadShape, audit, prepare, run_locust, run_wrk, seconds
from loadtest.scenarios import SCENARIOS
from loadtest.server import ROOT, Stack, server_env
from loadtest.verdict import verdict_line

STRATEGIES = ["unsafe", "naive_lock", "lock", "lock_fenced", "redis_atomic", "db_row_lock"]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
HOT_STOCK, HOT_LIMIT = 10_000_000, 1000


def default_database_url(var_dir: Path) -> str:
    """PostgreSQL's ``seckill_load`` (created if missing) when it answers, else SQLite."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'seckill_load'")
            if not found.fetchone():
                conn.execute("CREATE DATABASE seckill_load")
        return "postgresql://postgres@127.0.0.1:5432/seckill_load"
    except Exception:
        return f"sqlite:///{var_dir / 'load.sqlite3'}"


@contextmanager
def backing_services(args: argparse.Namespace, var_dir: Path) -> Iterator[tuple[str, str]]:
    """(database_url, redis_url); a private Redis lives exactly as long as the block."""
    database_url = args.database_url or default_database_url(var_dir)
    if args.redis_url:
        yield database_url, args.redis_url
        return
    from devtools.redis_server import RedisServer

    with RedisServer(workdir=var_dir / "redis") as server:
        yield database_url, server.url


def phase(
    stack: Stack,
    env: dict[str, str],
    data: dict[str, Any],
    strategy: str,
    scenario: str,
    shape: LoadShape,
    results: Path,
    sale_key: str | None = None,
) -> dict[str, Any]:
    """One Locust run against one sale, then its audit."""
    sale_id = data["sales"][sale_key or strategy]
    locust_data = {
        "sale_id": sale_id,
        "tokens": data["tokens"],
        "greedy_tokens": data["greedy_tokens"],
        "per_user_limit": data["per_user_limit"],
    }
    print(
        f"  {strategy:<13} {scenario:<7} sale {sale_id}: {shape.users} users, {shape.duration}",
        flush=True,
    )
    progress = Progress(
        results=results, redis_url=env["REDIS_URL"], sale_id=sale_id, stock=data["stock"]
    )
    try:
        load = run_locust(stack.url, locust_data, scenario, shape, results, progress.tick)
    finally:
        progress.close()
    print(f"    auditing sale {sale_id}", flush=True)
    verdict = audit(env, sale_id, results)
    return {"strategy": strategy, "scenario": scenario, **load, "audit": verdict}


def stack_options(args: argparse.Namespace) -> dict[str, int]:
    return {
        "web_workers": args.web_workers,
        "web_threads": args.web_threads,
        "celery_concurrency": args.celery_concurrency,
    }


def settings_of(args: argparse.Namespace, database_url: str, redis_url: str) -> dict[str, Any]:
    return {
        "database": database_url.split("@")[-1],
        "redis": redis_url,
        "users": args.users,
        "stock": args.stock,
        "duration": args.duration,
        "processes": args.processes,
        "critical_section_delay": args.delay,
        "naive_lock_ttl": args.naive_ttl,
        "web_workers": args.web_workers,
        "web_threads": args.web_threads,
        "celery_concurrency": args.celery_concurrency,
        "cpus": os.cpu_count(),
        "ceiling_users": getattr(args, "ceiling_users", None),
        "ceiling_duration": getattr(args, "ceiling_duration", None),
    }


def new_out_dir(args: argparse.Namespace, name: str) -> Path:
    out = (args.out or ROOT / "reports" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    return out


def cmd_run(args: argparse.Namespace) -> int:
    """One strategy, one scenario: verdict and per-endpoint figures."""
    out = new_out_dir(args, f"run-{args.strategy}-{args.scenario}")
    shape = LoadShape(args.users, args.duration, args.spawn_rate, args.processes)
    with backing_services(args, out) as (database_url, redis_url):
        env = server_env(
            database_url=database_url,
            redis_url=redis_url,
            var_dir=out / "var",
            critical_section_delay=args.delay,
            naive_lock_ttl=args.naive_ttl,
        )
        data = prepare(
            env,
            out,
            users=args.users,
            strategies=[args.strategy],
            stock=args.stock,
            per_user_limit=args.per_user_limit,
        )
        with Stack(env, out / "logs", **stack_options(args)) as stack:
            result = phase(stack, env, data, args.strategy, args.scenario, shape, out / "locust")
    result["settings"] = settings_of(args, database_url, redis_url)
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    print()
    print(report.markdown(report.verdict_table([result])))
    print()
    print(report.markdown(report.endpoint_table(result)))
    print(f"\nanswers: {result['answers']}; accepted/s {result['accepted_rps']:.1f}")
    print(f"results in {out}")
    passed, line = verdict_line([result])
    print(line)
    return 0 if passed else 1


def ceiling(
    args: argparse.Namespace,
    stack: Stack,
    env: dict[str, str],
    out: Path,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The trivial view vs one hot item (lock, redis_atomic), by Locust and by wrk."""
    rows, audits = [], []
    shape = LoadShape(args.ceiling_users, args.ceiling_duration, None, args.processes)
    hot = prepare(
        env,
        out / "hot",
        users=args.users,
        strategies=["lock", "redis_atomic"],
        stock=HOT_STOCK,
        per_user_limit=HOT_LIMIT,
        migrate=False,
    )
    ping = run_locust(stack.url, {"sale_id": 0}, "ping", shape, out / "ceiling-ping")
    rows.append(
        {
            "generator": "locust",
            "workload": "ping",
            **_summary(ping["endpoints"]["GET /loadtest/ping"]),
        }
    )
    for strategy in ("lock", "redis_atomic"):
        result = phase(stack, env, hot, strategy, "hot", shape, out / f"ceiling-{strategy}")
        audits.append(result)
        rows.append(
            {
                "generator": "locust",
                "workload": strategy,
                **_summary(result["endpoints"][report.ORDER]),
                "accepted_rps": result["accepted_rps"],
            }
        )
    wrk_hot = prepare(
        env,
        out / "hot-wrk",
        users=args.users,
        strategies=["lock", "lock_fenced", "redis_atomic"],
        stock=HOT_STOCK,
        per_user_limit=HOT_LIMIT,
        migrate=False,
    )
    # Group commit off (?lock_batch=1: one order per lock hold), on sales of their own.
    one_hot = prepare(
        env,
        out / "hot-wrk-one",
        users=args.users,
        strategies=["lock", "lock_fenced"],
        stock=HOT_STOCK,
        per_user_limit=HOT_LIMIT,
        migrate=False,
    )
    wrk_ping = run_wrk(stack.url, "/loadtest/ping", args.ceiling_duration, args.ceiling_users)
    if wrk_ping is None:
        print("  wrk not installed (apt-get install -y wrk): Locust figures only")
        return rows, audits
    print(f"  wrk           ping    {args.ceiling_users} connections", flush=True)
    rows.append({"workload": "ping", **wrk_ping})
    workloads = [
        ("lock", wrk_hot, "lock", ""),
        ("lock (batch 1)", one_hot, "lock", "?lock_batch=1"),
        ("lock_fenced", wrk_hot, "lock_fenced", ""),
        ("lock_fenced (batch 1)", one_hot, "lock_fenced", "?lock_batch=1"),
        ("redis_atomic", wrk_hot, "redis_atomic", ""),
    ]
    for workload, sales, strategy, query in workloads:
        sale_id = sales["sales"][strategy]
        print(f"  wrk           {workload:<7} sale {sale_id}", flush=True)
        measured = run_wrk(
            stack.url,
            f"/api/v1/sales/{sale_id}/orders/{query}",
            args.ceiling_duration,
            args.ceiling_users,
            tokens=sales["tokens"],
        )
        results = out / f"ceiling-wrk-{workload.replace(' ', '-').strip('()')}"
        results.mkdir(parents=True, exist_ok=True)
        verdict = audit(env, sale_id, results)
        batch = verdict.get("mean_batch_orders")
        rows.append({"workload": workload, **measured, "mean_batch": batch})
        if batch is not None:
            print(f"  wrk           {workload}: {batch} orders per lock hold", flush=True)
        audits.append(
            {"strategy": strategy, "scenario": f"hot (wrk, {workload})", "audit": verdict}
        )
    return rows, audits


def _summary(stats: dict[str, float]) -> dict[str, float]:
    return {"rps": stats["rps"], "p50": stats["p50"], "p95": stats["p95"], "p99": stats["p99"]}


def cmd_compare(args: argparse.Namespace) -> int:
    """Every strategy, same scenario, same fault injection; then, without fault injection,
    the flash crowd per strategy and the hot-item ceiling. One report."""
    out = new_out_dir(args, "compare")
    shape = LoadShape(args.users, args.duration, args.spawn_rate, args.processes)
    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
    with backing_services(args, out) as (database_url, redis_url):
        result["settings"] = settings_of(args, database_url, redis_url)
        env = server_env(
            database_url=database_url,
            redis_url=redis_url,
            var_dir=out / "var",
            critical_section_delay=args.delay,
            naive_lock_ttl=args.naive_ttl,
        )
        print(f"teaching run: {args.scenario}, delay {args.delay} s, naive TTL {args.naive_ttl} s")
        data = prepare(env, out, users=args.users, strategies=args.strategies, stock=args.stock)
        with Stack(env, out / "logs-teaching", **stack_options(args)) as stack:
            result["teaching"] = [
                phase(stack, env, data, s, args.scenario, shape, out / f"teaching-{s}")
                for s in args.strategies
            ]
        if not args.no_performance:
            env = server_env(
                database_url=database_url,
                redis_url=redis_url,
                var_dir=out / "var",
                base={k: v for k, v in env.items() if k != "SECKILL_NAIVE_LOCK_TTL"},
            )
            print("performance run: no fault injection")
            data = prepare(
                env,
                out,
                users=args.users,
                strategies=args.strategies,
                stock=args.stock,
                migrate=False,
            )
            flash = LoadShape(args.users, args.flash_duration, args.spawn_rate, args.processes)
            with Stack(env, out / "logs-performance", **stack_options(args)) as stack:
                result["flash"] = [
                    phase(stack, env, data, s, "flash", flash, out / f"flash-{s}")
                    for s in args.strategies
                ]
                result["ceiling"], result["ceiling_audit"] = ceiling(args, stack, env, out)
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    path = report.write_report(result, out)
    print()
    print(path.read_text())
    print(f"report: {path} and {out / 'report.html'}")
    phases = [p for part in ("teaching", "flash", "ceiling_audit") for p in result.get(part, [])]
    passed, line = verdict_line(phases)
    print(line)
    return 0 if passed else 1


class HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default (unless the help already says it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default is None or default is False or default == argparse.SUPPRESS:
            return text
        if "default" in text:
            return text
        shown = " ".join(default) if isinstance(default, list) else default
        return f"{text} (default: {shown})".replace("%", "%%")


class RawDescriptionWithDefaults(HelpWithDefaults, argparse.RawDescriptionHelpFormatter):
    """The module docstring's layout kept, as the top-level description."""


def duration(text: str) -> str:
    """An argparse type: a duration such as 30s, 2m, 1m30s (kept as written)."""
    try:
        seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtest", description=__doc__, formatter_class=RawDescriptionWithDefaults
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,compare}")
    common = argparse.ArgumentParser(add_help=False)
    add = common.add_argument
    add("--users", type=int, default=2000, help="buyers in the crowd (Locust users)")
    add("--stock", type=int, default=500, help="units on sale")
    add("--duration", type=duration, default="30s", help="measured window, e.g. 30s, 2m")
    add("--spawn-rate", type=float, help="arriving users per second (default: all in ~2 s)")
    add("--processes", type=int, default=1, help="Locust processes generating the load")
    add(
        "--database-url",
        help="database for the run; must exist (default: PostgreSQL seckill_load on "
        "127.0.0.1:5432, created when missing, else SQLite in the output directory)",
    )
    add("--redis-url", help="Redis for the run (default: a private redis-server for the run)")
    add("--web-workers", type=int, default=6, help="gunicorn worker processes")
    add("--web-threads", type=int, default=4, help="threads per gunicorn worker")
    add("--celery-concurrency", type=int, default=8, help="Celery worker processes")
    add("--out", type=Path, help="output directory (default: reports/<command>-<time>)")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="one strategy, one scenario",
        description="One strategy, one scenario: progress every second, the audit, one "
        "PASS/FAIL line. Exit 0 on PASS, 1 on FAIL, 2 when a prerequisite is missing.",
        formatter_class=HelpWithDefaults,
    )
    run.add_argument("--strategy", choices=STRATEGIES, default="lock", help="how orders are placed")
    run.add_argument(
        "--scenario", choices=sorted(SCENARIOS), default="flash", help="the crowd's behaviour"
    )
    run.add_argument("--per-user-limit", type=int, default=1, help="units one buyer may hold")
    run.add_argument(
        "--delay",
        type=float,
        default=0.0,
        help="seconds to pause inside the critical section (SECKILL_CRITICAL_SECTION_DELAY): "
        "widens the race the unsafe strategies lose",
    )
    run.add_argument(
        "--naive-ttl",
        type=float,
        default=None,
        help="naive_lock's lease in seconds (SECKILL_NAIVE_LOCK_TTL; default: the app's own)",
    )
    run.set_defaults(func=cmd_run)

    cmp_ = sub.add_parser(
        "compare",
        parents=[common],
        help="every strategy, one report",
        description="Every strategy under the same teaching scenario, then the flash crowd "
        "and the hot-item ceiling; a Markdown + HTML report and one PASS/FAIL line.",
        formatter_class=HelpWithDefaults,
    )
    cmp_.add_argument(
        "--strategies", nargs="+", choices=STRATEGIES, default=STRATEGIES, help="which to run"
    )
    cmp_.add_argument(
        "--scenario", choices=sorted(SCENARIOS), default="mixed", help="the teaching run's crowd"
    )
    cmp_.add_argument(
        "--delay", type=float, default=0.02, help="teaching run's critical-section pause (s)"
    )
    cmp_.add_argument("--naive-ttl", type=float, default=0.005, help="naive_lock's lease (s)")
    cmp_.add_argument(
        "--flash-duration", type=duration, default="15s", help="each flash-crowd window"
    )
    cmp_.add_argument(
        "--ceiling-users", type=int, default=64, help="connections for the hot-item ceiling"
    )
    cmp_.add_argument(
        "--ceiling-duration", type=duration, default="15s", help="each ceiling window"
    )
    cmp_.add_argument(
        "--no-performance",
        action="store_true",
        help="teaching run only: skip the flash-crowd latency and ceiling parts",
    )
    cmp_.set_defaults(func=cmd_compare)
    return p


def check_prerequisites(args: argparse.Namespace) -> bool:
    """Locust, the database and Redis, before any buyer is made or server started."""
    try:
        found = preflight(database_url=args.database_url, redis_url=args.redis_url)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    print(f"prerequisites: {'; '.join(found)}", flush=True)
    return True


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the with-blocks: servers and generators stopped


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not check_prerequisites(args):
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
