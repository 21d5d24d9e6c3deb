"""``python -m loadtest run|compare|ceiling``: real crowds against a real server, then the audit.

    python -m loadtest run --strategy lock --users 2000 --stock 500 --duration 30s
    python -m loadtest run --redis-cluster --web-nodes 2   # two web nodes on a Redis Cluster
    python -m loadtest compare                      # every strategy, same scenario, one report
    python -m loadtest ceiling                      # the order path vs ping and floor, one run

Each starts its own gunicorn + Celery worker on a free loopback port, against PostgreSQL
(database ``seckill_load``, created if missing) when 127.0.0.1:5432 answers, else SQLite, and a
private Redis unless ``--redis-url`` is given. ``run --redis-cluster`` uses a private
three-master Redis Cluster and RabbitMQ instead, then measures the same hot-item run on one
private Redis and prints both. Results go under ``reports/``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadtest import ceiling as yardsticks
from loadtest import report, server_profile
from loadtest.cluster import DEFAULT_AMQP_URL, app_cluster_support, broker_queue, private_cluster
from loadtest.cpu_account import Meter
from loadtest.preflight import PreflightError, preflight
from loadtest.progress import Progress
from loadtest.runner import LoadShape, audit, prepare, run_crowd, run_locust, run_wrk, seconds
from loadtest.scenarios import SCENARIOS
from loadtest.server import ROOT, Stack, server_env
from loadtest.verdict import verdict_line

STRATEGIES = ["unsafe", "naive_lock", "lock", "lock_fenced", "redis_atomic", "db_row_lock"]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
HOT_STOCK, HOT_LIMIT = 10_000_000, 1000
HOT_CLUSTER_GOAL = 0.8  # cluster accepted orders/s on one hot item, as a share of one Redis'


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
def backing_services(
    args: argparse.Namespace, var_dir: Path, cluster: bool = False
) -> Iterator[str]:
    """The run's Redis URL: ``--redis-url``, or a private Redis (with ``cluster``, a private
    Redis Cluster) that lives exactly as long as the block."""
    if cluster:
        with private_cluster(var_dir) as servers:
            yield servers.url
        return
    if args.redis_url:
        yield args.redis_url
        return
    from devtools.redis_server import RedisServer

    with RedisServer(workdir=var_dir / "redis") as server:
        yield server.url


@contextmanager
def celery_broker(args: argparse.Namespace, cluster: bool) -> Iterator[dict[str, str]]:
    """server_env's broker options: on a cluster, RabbitMQ with a queue of the run's own
    (deleted at the end); else none (Celery uses the run's Redis)."""
    if not cluster:
        yield {}
        return
    with broker_queue(args.amqp_url) as queue:
        yield {"broker_url": args.amqp_url, "celery_queue": queue}


# The flash crowd's load generators (``--flash-generator``): both leave what the audit reads.
FLASH_GENERATORS: dict[str, Callable[..., dict[str, Any]]] = {
    "crowd": run_crowd,
    "locust": run_locust,
}


def phase(
    stack: Stack,
    env: dict[str, str],
    data: dict[str, Any],
    strategy: str,
    scenario: str,
    shape: LoadShape,
    results: Path,
    sale_key: str | None = None,
    generator: Callable[..., dict[str, Any]] = run_locust,
) -> dict[str, Any]:
    """One generator run (Locust unless told) against one sale, then its audit."""
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
        load = generator(stack.urls, locust_data, scenario, shape, results, progress.tick)
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
        "web_nodes": getattr(args, "web_nodes", 1),
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
        "web_nodes": getattr(args, "web_nodes", 1),
        "redis_cluster": getattr(args, "redis_cluster", False),
        "hot_users": getattr(args, "hot_users", None),
        "hot_duration": getattr(args, "hot_duration", None),
        "hot_rounds": getattr(args, "hot_rounds", None),
    }


def new_out_dir(args: argparse.Namespace, name: str) -> Path:
    out = (args.out or ROOT / "reports" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    return out


class ClusterUnsupported(Exception):
    """The app's Redis client factory cannot use a ``redis+cluster://`` URL (yet)."""


@dataclass
class Deployment:
    """A deployment's backing services, running: its name and the environment naming them."""

    name: str
    env: dict[str, str]
    out: Path

    def stack(self, args: argparse.Namespace, logs: str) -> Stack:
        """Its ``--web-nodes`` gunicorns and Celery worker (logs under ``out/logs``)."""
        return Stack(self.env, self.out / logs, **stack_options(args))


@contextmanager
def deployment(
    args: argparse.Namespace, out: Path, database_url: str, *, cluster: bool
) -> Iterator[Deployment]:
    """One private Redis — or a private Redis Cluster with Celery on RabbitMQ — for as long as
    the block. Raises ClusterUnsupported at once when the app cannot use the cluster."""
    with (
        backing_services(args, out, cluster=cluster) as redis_url,
        celery_broker(args, cluster) as broker,
    ):
        env = server_env(
            database_url=database_url,
            redis_url=redis_url,
            var_dir=out / "var",
            critical_section_delay=args.delay,
            naive_lock_ttl=args.naive_ttl,
            **broker,
        )
        if cluster and (reason := app_cluster_support(env)):
            raise ClusterUnsupported(reason)
        yield Deployment("Redis Cluster" if cluster else "one Redis", env, out)


def hot_item(args: argparse.Namespace, where: Deployment, work: Path) -> dict[str, Any]:
    """Sustained demand on one item (stock and limit out of reach) on a freshly started stack,
    audited; the verdict table names the deployment."""
    shape = LoadShape(args.hot_users, args.hot_duration, None, args.processes)
    hot = prepare(
        where.env,
        work,
        users=args.users,
        strategies=[args.strategy],
        stock=HOT_STOCK,
        per_user_limit=HOT_LIMIT,
        migrate=False,
    )
    with where.stack(args, f"logs-{work.name}") as stack:
        result = phase(stack, where.env, hot, args.strategy, "hot", shape, work / "locust")
    return {**result, "scenario": f"hot ({where.name})", "deployment": where.name}


def hot_rounds(
    args: argparse.Namespace, cluster: Deployment, single: Deployment, out: Path
) -> dict[str, Any]:
    """``--hot-rounds`` rounds of the hot-item run on both deployments, which goes first
    alternating (cluster, one Redis; one Redis, cluster; …), each on a fresh stack, one stack
    at a time (two would share the machine and PostgreSQL's connections). Returns every run
    and the comparison of the means."""
    runs = []
    for n in range(args.hot_rounds):
        for where in (cluster, single) if n % 2 == 0 else (single, cluster):
            slug = "cluster" if where is cluster else "single"
            runs.append(hot_item(args, where, out / f"hot-{n + 1}-{slug}"))
    return {"runs": runs, **hot_comparison(runs)}


def hot_comparison(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean accepted orders/s on one hot item per deployment, their ratio and the goal."""

    def mean(name: str) -> float:
        rates = [r["accepted_rps"] for r in runs if r["deployment"] == name]
        return sum(rates) / len(rates) if rates else 0.0

    single, cluster = mean("one Redis"), mean("Redis Cluster")
    ratio = cluster / single if single else 0.0
    return {
        "single_accepted_rps": single,
        "cluster_accepted_rps": cluster,
        "ratio": ratio,
        "goal": HOT_CLUSTER_GOAL,
        "met": ratio >= HOT_CLUSTER_GOAL,
    }


def node_lines(result: dict[str, Any]) -> list[str]:
    """With several web nodes: each node's answers and its processes' worker ids."""
    seen = result["audit"].get("nodes", {})
    return [
        f"  node {url}: {count} order answers, {seen.get(url, {}).get('accepted', 0)} accepted, "
        f"worker ids {seen.get(url, {}).get('worker_ids', [])}"
        for url, count in result.get("nodes", {}).items()
    ]


def hot_line(args: argparse.Namespace, hot: dict[str, Any]) -> str:
    def rates(name: str) -> str:
        return ", ".join(f"{r['accepted_rps']:.1f}" for r in hot["runs"] if r["deployment"] == name)

    return (
        f"hot item ({args.strategy}, {args.hot_users} users, {args.hot_duration} x "
        f"{args.hot_rounds} each, alternating, {args.web_nodes} web node(s)): "
        f"one Redis {hot['single_accepted_rps']:.1f} accepted/s ({rates('one Redis')}), "
        f"Redis Cluster {hot['cluster_accepted_rps']:.1f} accepted/s ({rates('Redis Cluster')}), "
        f"ratio {hot['ratio']:.2f}x (goal >= {hot['goal']}x: {'met' if hot['met'] else 'MISSED'})"
    )


def cmd_run(args: argparse.Namespace) -> int:
    """One strategy, one scenario: verdict and per-endpoint figures. With ``--redis-cluster``,
    on a private Redis Cluster, then the hot-item run on it and on one Redis, side by side."""
    out = new_out_dir(args, f"run-{args.strategy}-{args.scenario}")
    database_url = args.database_url or default_database_url(out)
    cluster = args.redis_cluster
    shape = LoadShape(args.users, args.duration, args.spawn_rate, args.processes)
    with ExitStack() as running:
        try:
            main = running.enter_context(
                deployment(args, out / "cluster" if cluster else out, database_url, cluster=cluster)
            )
        except ClusterUnsupported as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        data = prepare(
            main.env,
            main.out,
            users=args.users,
            strategies=[args.strategy],
            stock=args.stock,
            per_user_limit=args.per_user_limit,
        )
        results = out / "locust"
        with main.stack(args, "logs") as stack:
            result = phase(stack, main.env, data, args.strategy, args.scenario, shape, results)
        phases = [result]
        if cluster:
            print("the same stack on one Redis too (Celery on it, as without --redis-cluster)")
            single = running.enter_context(
                deployment(args, out / "single", database_url, cluster=False)
            )
            result["hot"] = hot_rounds(args, main, single, out)
            phases += result["hot"]["runs"]
    result["settings"] = settings_of(args, database_url, main.env["REDIS_URL"])
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    print()
    print(report.markdown(report.verdict_table(phases)))
    print()
    print(report.markdown(report.endpoint_table(result)))
    print(f"\nanswers: {result['answers']}; accepted/s {result['accepted_rps']:.1f}")
    for line in node_lines(result):
        print(line)
    if "hot" in result:
        print(hot_line(args, result["hot"]))
    print(f"results in {out}")
    passed, line = verdict_line(phases)
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
    database_url = args.database_url or default_database_url(out)
    with backing_services(args, out) as redis_url:
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
                generator = FLASH_GENERATORS[args.flash_generator]
                result["flash"] = [
                    phase(
                        stack, env, data, s, "flash", flash, out / f"flash-{s}", generator=generator
                    )
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


def audit_rounds(
    env: dict[str, str], loads: list[yardsticks.Workload], rounds_dir: Path, soldout: str
) -> list[dict[str, Any]]:
    """The audit of every sale the rounds ordered on, all at once: each waits for its own
    sale to settle, and they need not wait for one another."""
    sales = [load for load in loads if load.orders]
    print(f"  auditing sales {', '.join(str(load.sale_id) for load in sales)}", flush=True)
    with ThreadPoolExecutor(max_workers=len(sales)) as pool:
        verdicts = pool.map(
            lambda load: audit(
                env, load.sale_id, yardsticks.gather_accepted(rounds_dir / load.name)
            ),
            sales,
        )
        return [
            {
                "strategy": soldout if load.name == yardsticks.SOLD_OUT else load.strategy,
                "scenario": "sold out" if load.name == yardsticks.SOLD_OUT else "hot (rounds)",
                "audit": verdict,
            }
            for load, verdict in zip(sales, verdicts, strict=True)
        ]


def prepare_yardstick_sales(
    args: argparse.Namespace, env: dict[str, str], out: Path, generator: str
) -> tuple[dict[str, Any], dict[str, Any], int | None, dict[str, Any] | None]:
    """(hot items per safe strategy, a one-unit sale to sell out, with wrk a hot ``lock`` item
    for group commit off, the flash-crowd sales)."""
    print(f"preparing: {args.users} buyers, hot items, a sold-out sale", flush=True)
    hot = prepare(
        env,
        out / "hot",
        users=args.users,
        strategies=list(yardsticks.HOT_STRATEGIES),
        stock=HOT_STOCK,
        per_user_limit=HOT_LIMIT,
    )
    sold = prepare(
        env, out / "soldout", users=1, strategies=[args.soldout_strategy], stock=1, migrate=False
    )
    batch_one = None
    if generator == "wrk":  # the hot crowd's tokens buy there too (the limit is per sale)
        one = prepare(
            env,
            out / "hot-batch1",
            users=1,
            strategies=["lock"],
            stock=HOT_STOCK,
            per_user_limit=HOT_LIMIT,
            migrate=False,
        )
        batch_one = one["sales"]["lock"]
    crowd = None
    if args.flash_strategies:
        crowd = prepare(
            env,
            out / "flash",
            users=args.users,
            strategies=args.flash_strategies,
            stock=args.stock,
            migrate=False,
        )
    return hot, sold, batch_one, crowd


def flash_crowds(
    args: argparse.Namespace, stack: Stack, env: dict[str, str], crowd: dict[str, Any], out: Path
) -> list[dict[str, Any]]:
    """The ``flash`` scenario once per strategy: its placement latency, then its audit."""
    print(f"flash crowd: {args.users} buyers within ~2 s, stock {args.stock}", flush=True)
    shape = LoadShape(args.users, args.duration, args.spawn_rate, args.processes)
    generator = FLASH_GENERATORS[args.flash_generator]
    return [
        {
            **phase(
                stack,
                env,
                crowd,
                strategy,
                "flash",
                shape,
                out / f"flash-{strategy}",
                generator=generator,
            ),
            "users": args.users,
        }
        for strategy in args.flash_strategies
    ]


def profiler(stack: Stack, out: Path) -> server_profile.ServerProfiler:
    """py-spy on the stack's (first) gunicorn server; exits when py-spy is missing."""
    executable = server_profile.py_spy()
    if executable is None:
        raise SystemExit("error: --py-spy needs py-spy: .venv/bin/pip install py-spy")
    return server_profile.ServerProfiler(stack.procs[0].pid, out / "profiles", executable)


def cmd_ceiling(args: argparse.Namespace) -> int:
    """Ping, floor, sold-out answers and each safe strategy on one hot item, interleaved in
    rounds against one gunicorn; then the flash crowd per strategy. One report, the audits."""
    try:
        generator = yardsticks.generator_name(args.generator)
    except yardsticks.GeneratorMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = new_out_dir(args, "ceiling")
    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
    database_url = args.database_url or default_database_url(out)
    with backing_services(args, out) as redis_url:
        result["settings"] = {
            **settings_of(args, database_url, redis_url),
            "generator": generator,
            "rounds": args.rounds,
            "slice": args.slice,
            "warmup": args.warmup,
            "connections": args.connections,
            "wrk_threads": args.wrk_threads,
            "soldout_strategy": args.soldout_strategy,
        }
        env = server_env(database_url=database_url, redis_url=redis_url, var_dir=out / "var")
        hot, sold, batch_one, crowd = prepare_yardstick_sales(args, env, out, generator)
        soldout_sale = sold["sales"][args.soldout_strategy]
        loads = yardsticks.workloads(hot["sales"], soldout_sale, batch_one)
        rounds_dir = out / "rounds"
        with Stack(env, out / "logs", **stack_options(args)) as stack:
            yardsticks.sell_out(stack.url, soldout_sale, sold["tokens"][0], rounds_dir / "soldout")
            slicer = yardsticks.Slicer(
                url=stack.url,
                generator=generator,
                tokens=hot["tokens"],
                slice_duration=args.slice,
                connections=args.connections,
                wrk_threads=args.wrk_threads,
                processes=args.processes,
                meter=Meter(sessions=stack.sessions(), redis_port=urlsplit(redis_url).port),
                profiler=profiler(stack, out) if args.py_spy else None,
            )
            print(f"{args.rounds} rounds, {args.slice} a slice, {generator}", flush=True)
            samples = yardsticks.rounds(slicer, loads, args.rounds, rounds_dir, args.warmup)
            result["samples"] = samples
            result["summary"] = yardsticks.summarize(samples, loads)
            result["audits"] = audit_rounds(env, loads, rounds_dir, args.soldout_strategy)
            result["flash"] = flash_crowds(args, stack, env, crowd, out) if crowd else []
    result["bounded_by"] = yardsticks.bounded_by(result["summary"])
    if args.py_spy and (profiles := server_profile.summary(out / "profiles")):
        print(f"web server profile per workload: {profiles}")
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    path = report.write_ceiling_report(result, out)
    print()
    print(path.read_text())
    print(f"report: {path} and {out / 'report.html'}")
    passed, line = verdict_line(result["audits"] + result["flash"])
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


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return value


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
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,compare,ceiling}")
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
    run.add_argument(
        "--web-nodes",
        type=positive_int,
        default=1,
        help="gunicorn servers on the same sale, each on its own port with its own worker-id "
        "leases; the crowd is split between them",
    )
    run.add_argument(
        "--redis-cluster",
        action="store_true",
        help="a private three-master Redis Cluster instead of one Redis, Celery on RabbitMQ "
        "(--amqp-url, a queue of the run's own); then the hot-item run on it and on one private "
        "Redis, both accepted orders/s and their ratio printed (goal >= 0.8x; the exit code "
        "is the audit's)",
    )
    run.add_argument(
        "--amqp-url",
        default=DEFAULT_AMQP_URL,
        help="RabbitMQ for --redis-cluster (Celery cannot use a Redis Cluster as its broker)",
    )
    run.add_argument(
        "--hot-users", type=int, default=64, help="--redis-cluster: users of each hot-item run"
    )
    run.add_argument(
        "--hot-duration",
        type=duration,
        default="15s",
        help="--redis-cluster: window of each hot-item run",
    )
    run.add_argument(
        "--hot-rounds",
        type=positive_int,
        default=2,
        help="--redis-cluster: hot-item runs on each deployment, which goes first alternating",
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
    add_flash_generator(cmp_)
    cmp_.set_defaults(func=cmd_compare)

    ceil = sub.add_parser(
        "ceiling",
        parents=[common],
        help="the order path against its yardsticks, one report",
        description="Ping, floor (one EVALSHA behind DRF), sold-out answers and each safe "
        "strategy on one hot item, interleaved in rounds of short slices against one gunicorn "
        "(medians over the rounds), then the flash crowd per strategy (--users buyers arriving "
        "within ~2 s, --stock units, --duration each). A Markdown + HTML report with the chart, "
        "the generator's own CPU, the audits and one PASS/FAIL line.",
        formatter_class=HelpWithDefaults,
    )
    ceil.add_argument("--rounds", type=int, default=3, help="rounds over every workload")
    ceil.add_argument("--slice", type=duration, default="5s", help="each workload's slice")
    ceil.add_argument(
        "--warmup", type=duration, default="2s", help="an uncounted slice of each workload first"
    )
    ceil.add_argument("--connections", type=int, default=64, help="connections (Locust users)")
    ceil.add_argument(
        "--py-spy",
        action="store_true",
        help="profile the web server in every counted slice (py-spy, GIL-holding samples): "
        "<out>/profiles/summary.md per workload, raw stacks beside it",
    )
    ceil.add_argument(
        "--generator",
        choices=["auto", "wrk", "locust"],
        default="auto",
        help="load generator for the rounds: auto is wrk when installed, else Locust",
    )
    ceil.add_argument("--wrk-threads", type=int, default=2, help="wrk's threads")
    ceil.add_argument(
        "--soldout-strategy",
        choices=sorted(report.SAFE),
        default="lock",
        help="the strategy of the sold-out sale",
    )
    ceil.add_argument(
        "--flash-strategies",
        nargs="*",
        choices=sorted(report.SAFE),
        default=["redis_atomic", "lock"],
        help="strategies of the flash crowd (none: skip it)",
    )
    add_flash_generator(ceil)
    ceil.set_defaults(func=cmd_ceiling, delay=0.0, naive_ttl=None)
    return p


def add_flash_generator(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--flash-generator",
        choices=sorted(FLASH_GENERATORS),
        default="crowd",
        help="the flash crowd's generator: crowd is loadtest.crowd (one asyncio process, "
        "latency from each buyer's scheduled arrival), locust the FlashBuyer scenario",
    )


def check_prerequisites(args: argparse.Namespace) -> bool:
    """Locust, the database and Redis (or the cluster's tools and broker), before any buyer is
    made or server started."""
    cluster = getattr(args, "redis_cluster", False)
    try:
        found = preflight(
            database_url=args.database_url,
            redis_url=args.redis_url,
            cluster_broker_url=args.amqp_url if cluster else None,
        )
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    print(f"prerequisites: {'; '.join(found)}", flush=True)
    return True


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the with-blocks: servers and generators stopped


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if getattr(args, "redis_cluster", False) and args.redis_url:
        p.error("--redis-cluster starts its own cluster (and one Redis): leave out --redis-url")
    if not check_prerequisites(args):
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
