"""``python -m loadtest ceiling`` for real, in a tiny configuration: one round of one-second
slices and a small flash crowd against a real gunicorn and Celery worker on the test database
and test Redis. The report has a row per workload, the sold-out sale only ever answers 409, the
yardsticks only 2xx, and every audit is clean. The round logic is checked on its own below."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loadtest import report
from loadtest.ceiling import LOCK_BATCH_ONE, Workload, summarize, workloads
from loadtest.scenarios import ORDER
from tests.conftest import ROOT, TEST_REDIS_URL, database_url_for_subprocesses, subprocess_env

WORKLOADS = ["ping", "floor", "soldout", "lock", "lock_fenced", "db_row_lock", "redis_atomic"]
FLASH_STOCK = 10


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_ceiling_runs_every_workload_and_the_audits_are_clean(redis_client, tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in subprocess_env().items() if k != "DJANGO_SETTINGS_MODULE"}
    # The rounds' order answers are recorded by the generator; the audit's wait for quiet
    # figures (2 s per sale) is most of this test's time.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest",
            "ceiling",
            *("--database-url", database_url_for_subprocesses(), "--redis-url", TEST_REDIS_URL),
            *("--rounds", "1", "--slice", "1s", "--warmup", "0s", "--connections", "8"),
            *("--users", "40", "--stock", str(FLASH_STOCK), "--duration", "4s"),
            *("--flash-strategies", "redis_atomic"),
            *("--web-workers", "2", "--web-threads", "4", "--celery-concurrency", "2"),
            *("--out", str(out)),
        ],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads((out / "result.json").read_text())
    expected = list(WORKLOADS)
    if result["settings"]["generator"] == "wrk":  # lock with group commit off, beside lock
        expected.insert(expected.index("lock") + 1, LOCK_BATCH_ONE)
    for name in expected:
        assert f"\n| {name} | " in done.stdout, name
    assert done.stdout.strip().splitlines()[-1].startswith("PASS: audit clean")
    assert "generator-bound (" in done.stdout  # the report says what the generator bounds

    rows = {r["workload"]: r for r in result["summary"]}
    assert list(rows) == expected
    for name, row in rows.items():
        assert row["rps"] > 0 and row["generator_cores"] > 0, (name, row)
        assert row["p50"] is not None and row["p99"] >= row["p50"], (name, row)
    assert all(k.startswith("409") for k in rows["soldout"]["answers"]), rows["soldout"]
    assert rows["soldout"]["accepted_rps"] == 0
    for name in ("ping", "floor"):
        assert rows[name]["share_of_ping" if name == "ping" else "share_of_floor"] == 1.0
        # every answer a success: wrk counts them as "2xx", Locust by status (200, 201)
        assert all(k.startswith("2") for k in rows[name]["answers"]), rows[name]
    for name in expected[3:]:  # every strategy's hot item
        assert rows[name]["accepted_rps"] > 0, rows[name]
    audits = result["audits"] + result["flash"]
    assert len(audits) == len(expected) - 2 + 1  # every sale ordered on, and the flash crowd
    for phase in audits:
        assert phase["audit"]["clean"], phase
    (flash,) = result["flash"]
    assert flash["audit"]["units_sold"] == FLASH_STOCK
    assert flash["generator"] == "crowd" and flash["generator_cpu_s"] > 0
    # every buyer answered for good: its order, or sold out (a 429 busy was retried)
    assert report.definitive_answers(flash["answers"]) == 40, flash["answers"]
    sold_out = next(a for a in result["audits"] if a["scenario"] == "sold out")
    assert sold_out["audit"]["units_sold"] == 1 and sold_out["audit"]["accepted_answers"] == 1
    assert (out / "yardsticks.png").stat().st_size > 0
    assert "![yardsticks](yardsticks.png)" in (out / "report.md").read_text()


def sample(workload: str, rnd: int, rps: float, accepted: float | None = None) -> dict:
    return {
        "workload": workload,
        "round": rnd,
        "generator": "wrk",
        "rps": rps,
        "accepted_rps": accepted,
        "answers": {"2xx": int(rps)},
        "p50": 1.0,
        "p99": 2.0,
        "socket_errors": 0,
        "elapsed_s": 1.0,
        "generator_cpu_s": 0.5 if workload != "ping" else 1.9,
        "generator_threads": 2,
        "machine_busy": 0.5,
    }


def test_shares_are_medians_of_same_round_ratios():
    """A round where the whole machine slowed down moves ping and the strategy together: the
    same-round ratio holds where a ratio of medians taken apart would not."""
    loads = [Workload("ping", "/p"), Workload("floor", "/f"), Workload("redis_atomic", "/o", 1)]
    samples = [
        sample("ping", 1, 1000),
        sample("floor", 1, 500),
        sample("redis_atomic", 1, 250, 200),
        sample("ping", 2, 400),
        sample("floor", 2, 200),
        sample("redis_atomic", 2, 100, 80),
        sample("ping", 3, 900),
        sample("floor", 3, 450),
        sample("redis_atomic", 3, 225, 180),
    ]
    rows = {r["workload"]: r for r in summarize(samples, loads)}
    atomic = rows["redis_atomic"]
    assert atomic["headline"] == "accepted_rps" and atomic["accepted_rps"] == 180
    assert atomic["share_of_ping"] == pytest.approx(0.2)
    assert atomic["share_of_floor"] == pytest.approx(0.4)
    assert rows["floor"]["share_of_ping"] == pytest.approx(0.5)
    assert rows["ping"]["generator_bound"] and not atomic["generator_bound"]


def test_workloads_put_the_yardsticks_first_then_sold_out_then_each_safe_strategy():
    hot = {"lock": 1, "lock_fenced": 2, "db_row_lock": 3, "redis_atomic": 4}
    loads = workloads(hot, soldout_sale=9)
    assert [w.name for w in loads] == WORKLOADS
    assert [w.sale_id for w in loads] == [None, None, 9, 1, 2, 3, 4]
    assert loads[2].path == "/api/v1/sales/9/orders/" and loads[2].headline == "rps"


def test_lock_with_one_order_per_hold_rides_beside_lock_on_a_sale_of_its_own():
    hot = {"lock": 1, "lock_fenced": 2, "db_row_lock": 3, "redis_atomic": 4}
    loads = workloads(hot, soldout_sale=9, batch_one_sale=5)
    one = loads[4]
    assert [w.name for w in loads[3:5]] == ["lock", LOCK_BATCH_ONE]
    assert one.path == "/api/v1/sales/5/orders/?lock_batch=1" and one.strategy == "lock"
    assert one.headline == "accepted_rps"


def flash_phase(answers: dict[str, int], p99: float) -> dict:
    order = {"count": sum(answers.values()), "p50": 100.0, "p95": 200.0, "p99": p99}
    return {
        "strategy": "lock",
        "endpoints": {ORDER: order},
        "answers": answers,
        "users": 100,
        "generator_cpu_s": 3.0,
        "elapsed_s": 10.0,
        "generator_threads": 1,
    }


def test_a_flash_window_that_cut_the_crowd_short_makes_p99_a_lower_bound():
    """Buyers still retrying a 429 when the window ended have no answer yet: their p99 is
    not in the figure, so the row says the goal is not met whatever the figure shows."""
    (_, (cut, whole)) = report.flash_table(
        [
            flash_phase({"201": 10, "429 busy": 80}, p99=300.0),
            flash_phase({"202": 10, "409 sold_out": 90}, p99=300.0),
        ]
    )
    assert cut[1] == "10 of 100" and "lower bound" in cut[5] and cut[6].endswith("MISSED")
    assert whole[1] == "100 of 100" and whole[5] == "300" and whole[6].endswith("met")
    assert whole[7].startswith("3.0 s = 0.30 cores")
