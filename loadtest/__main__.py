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
from loadtest.runner import LoadShape, audit, prepare, run_locust, run_wrk
from loadtest.scenarios import SCENARIOS
from loadtest.server import ROOT, Stack, server_env

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
    load = run_locust(stack.url, locust_data, scenario, shape, results)
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
    return 0 if result["audit"]["clean"] or args.strategy not in report.SAFE else 1


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
        strategies=["lock", "redis_atomic"],
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
    for strategy in ("lock", "redis_atomic"):
        sale_id = wrk_hot["sales"][strategy]
        print(f"  wrk           {strategy:<7} sale {sale_id}", flush=True)
        measured = run_wrk(
            stack.url,
            f"/api/v1/sales/{sale_id}/orders/",
            args.ceiling_duration,
            args.ceiling_users,
            tokens=wrk_hot["tokens"],
        )
        rows.append({"workload": strategy, **measured})
        results = out / f"ceiling-wrk-{strategy}"
        results.mkdir(parents=True, exist_ok=True)
        verdict = audit(env, sale_id, results)
        audits.append({"strategy": strategy, "scenario": "hot (wrk)", "audit": verdict})
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
    safe = [
        p
        for part in ("teaching", "flash", "ceiling_audit")
        for p in result.get(part, [])
        if p["strategy"] in report.SAFE
    ]
    return 0 if all(p["audit"]["clean"] for p in safe) else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--users", type=int, default=2000)
    common.add_argument("--stock", type=int, default=500)
    common.add_argument("--duration", default="30s", help="e.g. 30s, 2m")
    common.add_argument("--spawn-rate", type=float, help="users/s (default: all in ~2 s)")
    common.add_argument("--processes", type=int, default=1, help="Locust processes")
    common.add_argument("--database-url", help="default: PostgreSQL seckill_load, else SQLite")
    common.add_argument("--redis-url", help="default: a private redis-server for the run")
    common.add_argument("--web-workers", type=int, default=6)
    common.add_argument("--web-threads", type=int, default=4)
    common.add_argument("--celery-concurrency", type=int, default=8)
    common.add_argument("--out", type=Path, help="default: reports/<command>-<time>")

    run = sub.add_parser("run", parents=[common], help="one strategy, one scenario")
    run.add_argument("--strategy", choices=STRATEGIES, default="lock")
    run.add_argument("--scenario", choices=sorted(SCENARIOS), default="flash")
    run.add_argument("--per-user-limit", type=int, default=1)
    run.add_argument(
        "--delay",
        type=float,
        default=0.0,
        help="SECKILL_CRITICAL_SECTION_DELAY in seconds (fault injection)",
    )
    run.add_argument("--naive-ttl", type=float, default=None, help="SECKILL_NAIVE_LOCK_TTL")
    run.set_defaults(func=cmd_run)

    cmp_ = sub.add_parser("compare", parents=[common], help="every strategy, one report")
    cmp_.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=STRATEGIES)
    cmp_.add_argument("--scenario", choices=sorted(SCENARIOS), default="mixed")
    cmp_.add_argument("--delay", type=float, default=0.02)
    cmp_.add_argument("--naive-ttl", type=float, default=0.005)
    cmp_.add_argument("--flash-duration", default="15s")
    cmp_.add_argument("--ceiling-users", type=int, default=64)
    cmp_.add_argument("--ceiling-duration", default="15s")
    cmp_.add_argument(
        "--no-performance",
        action="store_true",
        help="teaching run only: skip the flash-crowd latency and ceiling parts",
    )
    cmp_.set_defaults(func=cmd_compare)
    return p


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the with-blocks: servers and generators stopped


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
