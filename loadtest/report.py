"""Tables and charts of a run or a comparison: Markdown, HTML and PNG (matplotlib, Agg).

One set of row builders feeds the terminal, the Markdown and the HTML, so the three can never
disagree about a figure.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from loadtest.cpu_account import PARTS
from loadtest.scenarios import ORDER

SAFE = {"lock", "lock_fenced", "redis_atomic", "db_row_lock"}
Table = tuple[list[str], list[list[str]]]


def _fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


TEACHING_NOTE = "unsafe: wrong on purpose"
OVERSOLD_RED = "#d62728"


def chart_label(strategy: str) -> str:
    """A strategy's name under a bar; the teaching ones say they are unsafe, so a fast bar is
    never read as a recommendation."""
    return strategy if strategy in SAFE else f"{strategy}\n({TEACHING_NOTE})"


def inline_html(prose: str) -> str:
    """Escaped prose with Markdown's `code` spans as <code>, as the Markdown report shows them."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(prose))


def verdict_label(phase: dict[str, Any]) -> str:
    a = phase["audit"]
    if a["clean"]:
        return "clean"
    if phase["strategy"] not in SAFE:
        return "VIOLATION (expected: teaching strategy)"
    return "VIOLATION"


def project_label(a: dict[str, Any]) -> str:
    project = a["project_audit"]
    if not project.get("available"):
        return "n/a"
    if project.get("ok") is None:
        return "error"
    return "ok" if project["ok"] else "violation: " + ", ".join(project.get("violations", []))


def verdict_table(phases: list[dict[str, Any]]) -> Table:
    headers = [
        "strategy",
        "scenario",
        "stock",
        "units sold",
        "oversold",
        "duplicates",
        "limit violations",
        "lost orders",
        "conserved",
        "settled",
        "verdict (our counts)",
        "seckill_audit",
    ]
    rows = []
    for p in phases:
        a = p["audit"]
        rows.append(
            [
                p["strategy"],
                p["scenario"],
                str(a["stock_total"]),
                str(a["units_sold"]),
                str(a["oversold"]),
                str(a["duplicates"]),
                str(a["limit_violations"]),
                str(a["lost_orders"]),
                "yes" if a["conserved"] else "NO",
                "yes"
                if a["queued_left"] == 0 and a.get("settled", True)
                else f"NO ({a['queued_left']} queued)",
                verdict_label(p),
                project_label(a),
            ]
        )
    return headers, rows


def latency_table(phases: list[dict[str, Any]]) -> Table:
    """Order placement per strategy: rate, accepted rate, percentiles, answers."""
    headers = [
        "strategy",
        "scenario",
        "order requests",
        "order req/s",
        "accepted/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "answers",
    ]
    rows = []
    for p in phases:
        o = p["endpoints"].get(ORDER, {})
        answers = ", ".join(f"{k}: {v}" for k, v in p["answers"].items())
        rows.append(
            [
                p["strategy"] if p["strategy"] in SAFE else f"{p['strategy']} ({TEACHING_NOTE})",
                p["scenario"],
                str(o.get("count", 0)),
                _fmt(o.get("rps"), 1),
                _fmt(p["accepted_rps"], 1),
                _fmt(o.get("p50")),
                _fmt(o.get("p95")),
                _fmt(o.get("p99")),
                answers,
            ]
        )
    return headers, rows


def endpoint_table(phase: dict[str, Any]) -> Table:
    headers = ["endpoint", "requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms"]
    rows = [
        [
            name,
            str(s["count"]),
            str(s["failures"]),
            _fmt(s["rps"], 1),
            _fmt(s["p50"]),
            _fmt(s["p95"]),
            _fmt(s["p99"]),
        ]
        for name, s in phase["endpoints"].items()
    ]
    return headers, rows


def ceiling_table(ceiling: list[dict[str, Any]]) -> Table:
    """Hot item vs the trivial JSON view, per generator, with the ratio the goals name."""
    headers = [
        "generator",
        "workload",
        "req/s",
        "accepted/s",
        "share of ping req/s",
        "goal",
        "p50 ms",
        "p99 ms",
    ]
    goals = {"lock": 0.30, "lock_fenced": 0.30, "redis_atomic": 0.75}  # issue 16: lock 0.30
    ping = {c["generator"]: c["rps"] for c in ceiling if c["workload"] == "ping"}
    rows = []
    for c in ceiling:
        base = ping.get(c["generator"])
        share = goal = "–"
        if c["workload"] != "ping" and base:
            ratio = c["accepted_rps"] / base
            share = f"{ratio:.0%}"
            want = goals.get(c["workload"])
            if want is not None:
                goal = f"≥ {want:.0%}: {'met' if ratio >= want else 'MISSED'}"
        rows.append(
            [
                c["generator"],
                c["workload"],
                _fmt(c["rps"], 1),
                _fmt(c.get("accepted_rps"), 1) if c["workload"] != "ping" else "–",
                share,
                goal,
                _fmt(c["p50"]),
                _fmt(c["p99"]),
            ]
        )
    return headers, rows


def markdown(table: Table) -> str:
    headers, rows = table
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(table: Table) -> str:
    headers, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bar_chart(
    path: Path,
    title: str,
    labels: list[str],
    series: dict[str, list[float]],
    ylabel: str,
    line: float | None = None,
    line_label: str = "",
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    if line is not None:
        ax.axhline(line, color="black", linestyle="--", linewidth=1, label=line_label)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def units_segments(phases: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(label, units sold within the stock, units sold above it) per phase."""
    out = []
    for p in phases:
        sold, stock = p["audit"]["units_sold"], p["audit"]["stock_total"]
        out.append((chart_label(p["strategy"]), min(sold, stock), max(0, sold - stock)))
    return out


def _units_chart(path: Path, title: str, phases: list[dict[str, Any]]) -> Path:
    """Units sold per strategy, the part above the stock line in red: an oversell is visible
    at a glance, whatever the scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    segments = units_segments(phases)
    stock = phases[0]["audit"]["stock_total"]
    xs = range(len(segments))
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    within = ax.bar(xs, [s[1] for s in segments], 0.6, color="#1f77b4", label="units sold")
    over = ax.bar(
        xs,
        [s[2] for s in segments],
        0.6,
        bottom=[s[1] for s in segments],
        color=OVERSOLD_RED,
        label="oversold (above stock)",
    )
    ax.bar_label(within, fmt="%.0f", fontsize=7, label_type="center", color="white")
    ax.bar_label(over, labels=[f"+{s[2]}" if s[2] else "" for s in segments], fontsize=8)
    ax.axhline(stock, color="black", linestyle="--", linewidth=1, label=f"stock ({stock})")
    ax.set_xticks(list(xs), [s[0] for s in segments], fontsize=8)
    ax.set_ylabel("units")
    ax.set_ylim(0, max(stock, *(s[1] + s[2] for s in segments)) * 1.12)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def charts(result: dict[str, Any], out: Path) -> dict[str, Path]:
    """units.png (sold vs stock), throughput.png, latency.png, ceiling.png when measured."""
    made = {}
    teaching = result.get("teaching", [])
    if teaching:
        made["units"] = _units_chart(
            out / "units.png",
            f"Units sold vs stock — {teaching[0]['scenario']} crowd, "
            f"{result['settings']['critical_section_delay'] * 1000:g} ms critical-section delay",
            teaching,
        )
    flash = result.get("flash") or teaching
    if flash:
        labels = [chart_label(p["strategy"]) for p in flash]
        made["throughput"] = _bar_chart(
            out / "throughput.png",
            f"Order throughput — {flash[0]['scenario']} crowd",
            labels,
            {
                "order req/s": [p["endpoints"].get(ORDER, {}).get("rps", 0) for p in flash],
                "accepted/s": [p["accepted_rps"] for p in flash],
            },
            "per second",
        )
        made["latency"] = _bar_chart(
            out / "latency.png",
            f"Order latency — {flash[0]['scenario']} crowd",
            labels,
            {
                f"p{q}": [p["endpoints"].get(ORDER, {}).get(f"p{q}", 0) for p in flash]
                for q in (50, 95, 99)
            },
            "ms",
            line=250,
            line_label="p99 goal 250 ms",
        )
    ceiling = result.get("ceiling", [])
    if ceiling:
        gens = sorted({c["generator"] for c in ceiling})
        loads = ["ping", "lock", "redis_atomic"]
        series = {
            g: [
                next(
                    (
                        c["accepted_rps"] if c["workload"] != "ping" else c["rps"]
                        for c in ceiling
                        if c["generator"] == g and c["workload"] == w
                    ),
                    0,
                )
                for w in loads
            ]
            for g in gens
        }
        made["ceiling"] = _bar_chart(
            out / "ceiling.png",
            "One hot item: accepted orders/s vs trivial JSON req/s",
            ["ping (req/s)", "lock (accepted/s)", "redis_atomic (accepted/s)"],
            series,
            "per second",
        )
    return made


def sections(result: dict[str, Any]) -> list[tuple[str, str, Table | None]]:
    """(heading, prose, table) in report order."""
    s = result["settings"]
    wrk = any(c.get("generator") == "wrk" for c in result.get("ceiling", []))
    generators = "Locust (FastHttpUser, {} process(es)){}".format(
        s["processes"], " and wrk share" if wrk else " shares"
    )
    out: list[tuple[str, str, Table | None]] = [
        (
            "Setup",
            f"Database {s['database']}; Redis {s['redis']}; gunicorn gthread "
            f"{s['web_workers']} workers × {s['web_threads']} threads, DEBUG=0, HTTPS=0, throttles "
            f"raised; Celery worker (threads, {s['celery_concurrency']}). {generators} the "
            f"machine ({s['cpus']} CPUs) with the server, so every figure is bounded by that "
            "contention."
            + ("" if wrk or not result.get("ceiling") else " wrk was not installed: no wrk run."),
            None,
        )
    ]
    if result.get("teaching"):
        out.append(
            (
                "Correctness under a crowd (teaching run)",
                f"All strategies alike: scenario `{result['teaching'][0]['scenario']}`, "
                f"{s['users']} buyers, stock {s['stock']}, {s['duration']}, fault injection "
                f"SECKILL_CRITICAL_SECTION_DELAY={s['critical_section_delay']} s and "
                f"SECKILL_NAIVE_LOCK_TTL={s['naive_lock_ttl']} s for every strategy, so the "
                "naive lock's lease runs out inside the critical section.",
                verdict_table(result["teaching"]),
            )
        )
        out.append(("Order latency, teaching run", "", latency_table(result["teaching"])))
    if result.get("flash"):
        out.append(
            (
                "Flash crowd without fault injection",
                f"Scenario `flash`: {s['users']} buyers arrive within ~2 s, each tries once "
                "(a 429 is retried with the same key after Retry-After, at most 5 times); "
                f"{flash_generator(result['flash'][0])}. "
                "This is the run the p99 ≤ 250 ms goal refers to. `unsafe` and `naive_lock` "
                "are teaching strategies: any speed they show comes from skipping or breaking "
                "the lock, and they oversell.",
                latency_table(result["flash"]),
            )
        )
        out.append(("Audit, flash crowd", "", verdict_table(result["flash"])))
    if result.get("ceiling"):
        out.append(
            (
                "Ceiling: one hot item vs a trivial JSON view",
                f"Same server, same run. Stock 10,000,000 and per-user limit 1000, so nothing runs "
                f"out; {s['ceiling_users']} connections, {s['ceiling_duration']} per workload. "
                "The share compares accepted orders/s with the ping view's req/s measured by the "
                "same generator.",
                ceiling_table(result["ceiling"]),
            )
        )
        if result.get("ceiling_audit"):
            out.append(("Audit, hot item", "", verdict_table(result["ceiling_audit"])))
    return out


def write_report(result: dict[str, Any], out: Path) -> Path:
    """report.md + report.html + PNGs in ``out``; returns the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    return write_document(result, out, sections(result), charts(result, out))


def write_document(
    result: dict[str, Any],
    out: Path,
    parts: list[tuple[str, str, Table | None]],
    images: dict[str, Path],
) -> Path:
    """report.md + report.html from (heading, prose, table) parts and charts already drawn."""
    md = [f"# seckill load test — {result['started']}", ""]
    body = [f"<h1>seckill load test — {html.escape(result['started'])}</h1>"]
    for heading, prose, table in parts:
        md += [f"## {heading}", "", prose, ""] if prose else [f"## {heading}", ""]
        body.append(f"<h2>{html.escape(heading)}</h2>")
        if prose:
            body.append(f"<p>{inline_html(prose)}</p>")
        if table is not None:
            md += [markdown(table), ""]
            body.append(html_table(table))
    md += ["## Charts", ""] + [f"![{name}]({path.name})" for name, path in images.items()]
    body += ["<h2>Charts</h2>"] + [f'<img src="{p.name}" alt="{n}">' for n, p in images.items()]
    (out / "report.md").write_text("\n".join(md) + "\n")
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:"
        "collapse}td,th{border:1px solid #ccc;padding:.2em .5em;font-size:.9em}"
        "img{max-width:100%;display:block;margin:1em 0}"
    )
    (out / "report.html").write_text(
        f"<!doctype html><meta charset=utf-8><title>seckill load test</title>"
        f"<style>{style}</style>{''.join(body)}"
    )
    return out / "report.md"


# The yardstick goals: headline figure over ping's and over floor's req/s (None: no goal
# against floor). Issue 17: redis_atomic and sold out; issue 16 (group commit): the locks.
YARDSTICK_GOALS: dict[str, tuple[float, float | None]] = {
    "redis_atomic": (0.42, 0.80),
    "soldout": (0.45, 0.85),
    "lock": (0.30, None),
    "lock_fenced": (0.30, None),
}
FLASH_P99_GOAL_MS = 500.0


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _goal(row: dict[str, Any]) -> str:
    want = YARDSTICK_GOALS.get(row["workload"])
    if want is None:
        return "–"
    ping, floor = row["share_of_ping"], row["share_of_floor"]
    met = ping is not None and ping >= want[0]
    text = f"≥ {want[0]:.2f} ping"
    if want[1] is not None:
        met = met and floor is not None and floor >= want[1]
        text += f", ≥ {want[1]:.2f} floor"
    return f"{text}: {'met' if met else 'MISSED'}"


def _generator_load(row: dict[str, Any]) -> str:
    n = row["generator_threads"]
    one, many = ("thread", "threads") if row["generator"] == "wrk" else ("process", "processes")
    text = f"{row['generator_cores']:.2f} cores / {n} {one if n == 1 else many}"
    return text + (" — BOUND" if row["generator_bound"] else "")


def yardstick_table(summary: list[dict[str, Any]]) -> Table:
    """Per workload, medians over the rounds: rates, shares of the yardsticks, latency, who
    the generator was and how busy it and the machine were."""
    headers = [
        "workload",
        "answered/s",
        "accepted orders/s",
        "share of ping",
        "share of floor",
        "goal",
        "p50 ms",
        "p99 ms",
        "generator CPU",
        "machine busy",
        "answers",
    ]
    rows = []
    for r in summary:
        answers = ", ".join(f"{k}: {v}" for k, v in r["answers"].items()) or "–"
        if r["socket_errors"]:
            answers += f", socket errors: {r['socket_errors']}"
        rows.append(
            [
                r["workload"],
                _fmt(r["rps"], 1),
                _fmt(r["accepted_rps"], 1),
                _ratio(r["share_of_ping"]),
                _ratio(r["share_of_floor"]),
                _goal(r),
                _fmt(r["p50"], 1),
                _fmt(r["p99"], 1),
                _generator_load(r),
                f"{r['machine_busy']:.0%}" if r["machine_busy"] is not None else "–",
                answers,
            ]
        )
    return headers, rows


def cpu_table(summary: list[dict[str, Any]]) -> Table | None:
    """Per workload, ms of CPU one answer costs each part of the machine (median over the
    rounds; loadtest.cpu_account), and its cost in pings. None when nothing was measured."""
    measured = [r for r in summary if r.get("cpu_ms")]
    if not measured:
        return None
    ping = next((r["cpu_ms"].get("total") for r in measured if r["workload"] == "ping"), None)
    headers = ["workload", *PARTS, "total ms", "in pings"]
    rows = [
        [
            r["workload"],
            *(_fmt(r["cpu_ms"].get(part), 3) for part in PARTS),
            _fmt(r["cpu_ms"].get("total"), 3),
            _fmt(r["cpu_ms"]["total"] / ping, 2) if ping and r["cpu_ms"].get("total") else "–",
        ]
        for r in measured
    ]
    return headers, rows


def flash_table(phases: list[dict[str, Any]]) -> Table:
    """The flash crowd per strategy: placement latency against the goal, the generator's CPU."""
    headers = [
        "strategy",
        "buyers answered",
        "order requests",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "goal",
        "generator CPU",
    ]
    rows = []
    for p in phases:
        o = p["endpoints"].get(ORDER, {})
        p99 = o.get("p99")
        met = p99 is not None and p99 <= FLASH_P99_GOAL_MS
        answered = definitive_answers(p["answers"])
        buyers = p.get("users")
        cut = buyers is not None and answered < buyers
        busy = p["generator_cpu_s"] / max(p["elapsed_s"], 1e-9)
        rows.append(
            [
                p["strategy"],
                f"{answered} of {buyers}" if buyers is not None else str(answered),
                str(o.get("count", 0)),
                _fmt(o.get("p50")),
                _fmt(o.get("p95")),
                _fmt(p99) + (" (window cut: a lower bound)" if cut else ""),
                f"p99 ≤ {FLASH_P99_GOAL_MS:.0f} ms: " + ("MISSED" if cut or not met else "met"),
                f"{p['generator_cpu_s']:.1f} s = {busy:.2f} cores over "
                f"{p['elapsed_s']:.0f} s ({flash_generator(p)})",
            ]
        )
    return headers, rows


def flash_generator(phase: dict[str, Any]) -> str:
    if phase.get("generator") == "crowd":
        return "loadtest.crowd, one process"
    return f"{phase['generator_threads']} Locust process(es)"


def definitive_answers(answers: dict[str, int]) -> int:
    """Answers that end a one-try buyer's attempt: accepted, replayed or refused for good
    (a 429 or 503 is retried, a connection error is no answer)."""
    return sum(n for label, n in answers.items() if label[:1] == "2" or label.startswith("409"))


def yardstick_chart(path: Path, summary: list[dict[str, Any]]) -> Path:
    """Each workload's headline figure, with ping and floor beside them as the yardsticks."""
    labels = [
        f"{r['workload']}\n({'accepted' if r['headline'] == 'accepted_rps' else 'answered'}/s)"
        + ("" if r["workload"] == "ping" else f"\n{_ratio(r['share_of_ping'])} of ping")
        for r in summary
    ]
    return _bar_chart(
        path,
        "Order path vs its yardsticks, one hot item, medians of interleaved rounds",
        labels,
        {"per second": [r[r["headline"]] or 0 for r in summary]},
        "per second",
        line=next((r["rps"] for r in summary if r["workload"] == "floor"), None),
        line_label="floor (one EVALSHA behind DRF)",
    )


def ceiling_sections(result: dict[str, Any]) -> list[tuple[str, str, Table | None]]:
    """(heading, prose, table) of ``python -m loadtest ceiling``'s report."""
    s = result["settings"]
    out: list[tuple[str, str, Table | None]] = [
        (
            "Setup",
            f"Database {s['database']}; Redis {s['redis']}; gunicorn gthread "
            f"{s['web_workers']} workers × {s['web_threads']} threads, DEBUG=0, throttles raised; "
            f"Celery worker (threads, {s['celery_concurrency']}). Generator: {s['generator']}, "
            f"{s['connections']} connections, {s['rounds']} rounds of {s['slice']} slices "
            f"(every other round in reverse order) after an uncounted {s.get('warmup', '0s')} "
            "warm-up slice of each workload; figures are medians over the rounds, shares "
            "the median of same-round ratios. Generator and server share the machine "
            f"({s['cpus']} CPUs).",
            None,
        ),
        (
            "Yardsticks: the order path against ping and floor",
            '`ping` is plain Django; `floor` a DRF `APIView` parsing `{"quantity": n}` around '
            "one `EVALSHA`. Strategies run on one hot item (stock 10,000,000, per-user limit "
            f"1000); `soldout` is a sold-out `{s['soldout_strategy']}` sale. The share of a "
            "strategy is its accepted orders/s, of the others their answers/s. "
            + result["bounded_by"]
            + ".",
            yardstick_table(result["summary"]),
        ),
    ]
    cpu = cpu_table(result["summary"])
    if cpu:
        out.append(
            (
                "Where the CPU goes, per answer",
                "Milliseconds of CPU one answer cost each part of the machine during the "
                "workload's slices (medians over the rounds; from /proc: the gunicorn servers, "
                "the Celery worker, the run's Redis, every PostgreSQL process, the generator; "
                "kernel/other is the rest of the machine's busy time, loopback networking "
                "included). With every core busy, answers/s is about cores ÷ total: the part "
                "that grows from ping to a workload is the cost that holds it back.",
                cpu,
            )
        )
    out.append(("Audit, yardstick rounds", "", verdict_table(result["audits"])))
    if result.get("flash"):
        out.append(
            (
                "Flash crowd",
                f"{s['users']} buyers arriving within ~2 s, stock {s['stock']}, each tries once "
                f"(a 429 is retried after Retry-After); {flash_generator(result['flash'][0])}; "
                "latency from each buyer's scheduled arrival with loadtest.crowd, from the "
                f"request's start with Locust; at most {s['duration']} per strategy.",
                flash_table(result["flash"]),
            )
        )
        out.append(("Audit, flash crowd", "", verdict_table(result["flash"])))
    return out


def write_ceiling_report(result: dict[str, Any], out: Path) -> Path:
    """report.md + report.html + yardsticks.png of ``python -m loadtest ceiling``."""
    out.mkdir(parents=True, exist_ok=True)
    images = {"yardsticks": yardstick_chart(out / "yardsticks.png", result["summary"])}
    return write_document(result, out, ceiling_sections(result), images)
