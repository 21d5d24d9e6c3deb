"""The comparison report: oversold units drawn red above the stock line, the teaching
strategies labelled unsafe, Markdown code spans as <code> in the HTML, and no wrk run described
when none ran."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest import report
from loadtest.scenarios import ORDER

pytest.importorskip("matplotlib")


def phase(strategy: str, sold: int, stock: int = 50) -> dict:
    audit = {
        "stock_total": stock,
        "units_sold": sold,
        "oversold": max(0, sold - stock),
        "duplicates": 0,
        "limit_violations": 0,
        "lost_orders": 0,
        "conserved": sold <= stock,
        "queued_left": 0,
        "settled": True,
        "clean": sold <= stock,
        "project_audit": {"available": False},
    }
    order = {"count": 400, "rps": 120.0, "p50": 40.0, "p95": 90.0, "p99": 150.0}
    return {
        "strategy": strategy,
        "scenario": "mixed",
        "endpoints": {ORDER: order},
        "answers": {"201": sold},
        "accepted": sold,
        "accepted_rps": 12.0,
        "audit": audit,
    }


def comparison(ceiling: list[dict] | None = None) -> dict:
    settings = {
        "database": "sqlite",
        "redis": "redis://127.0.0.1:1/0",
        "users": 100,
        "stock": 50,
        "duration": "5s",
        "processes": 1,
        "critical_section_delay": 0.02,
        "naive_lock_ttl": 0.005,
        "web_workers": 2,
        "web_threads": 4,
        "celery_concurrency": 2,
        "cpus": 2,
        "ceiling_users": 8,
        "ceiling_duration": "5s",
    }
    teaching = [phase("unsafe", 60), phase("naive_lock", 52), phase("lock", 50)]
    return {"started": "now", "settings": settings, "teaching": teaching, "ceiling": ceiling or []}


def red_pixels(png) -> int:
    import matplotlib.image

    rgb = (matplotlib.image.imread(png)[..., :3] * 255).astype(int)
    red = np.array([int(report.OVERSOLD_RED[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - red).sum(axis=-1) < 30).sum())


def test_oversold_units_are_red_above_the_stock_line(tmp_path):
    assert report.units_segments(comparison()["teaching"]) == [
        ("unsafe\n(unsafe: wrong on purpose)", 50, 10),
        ("naive_lock\n(unsafe: wrong on purpose)", 50, 2),
        ("lock", 50, 0),
    ]
    (tmp_path / "a").mkdir()
    oversold = report.charts(comparison(), tmp_path / "a")
    clean = comparison()
    clean["teaching"] = [phase("lock", 50), phase("db_row_lock", 50)]
    (tmp_path / "b").mkdir()
    honest = report.charts(clean, tmp_path / "b")
    assert red_pixels(oversold["units"]) > 200  # the red segments (and the legend's swatch)
    assert red_pixels(honest["units"]) < red_pixels(oversold["units"]) / 4


def test_html_report_renders_code_spans_and_labels_unsafe_strategies(tmp_path):
    report.write_report(comparison(), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<code>mixed</code>" in page and "`" not in page
    assert "naive_lock (unsafe: wrong on purpose)" in page
    assert "wrk" not in page  # no ceiling was measured, so no wrk run is described


def test_setup_mentions_wrk_only_when_it_ran(tmp_path):
    locust_only = [{"generator": "locust", "workload": "ping", "rps": 1.0, "p50": 1, "p99": 2}]
    (setup, prose, _), *_ = report.sections(comparison(locust_only))
    assert "and wrk share" not in prose and "wrk was not installed" in prose
    with_wrk = locust_only + [{**locust_only[0], "generator": "wrk"}]
    (setup, prose, _), *_ = report.sections(comparison(with_wrk))
    assert "and wrk share the machine" in prose
