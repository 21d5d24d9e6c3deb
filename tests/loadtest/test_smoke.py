"""Smoke test of the load-test kit, so the Locust files cannot rot.

A real gunicorn and Celery worker against the test database and test Redis, a small flash
crowd headless for a few seconds on a ``lock`` sale and a ``redis_atomic`` sale, then the
audit: exactly the stock sold, nothing lost, nothing duplicated, no limit broken (and no oversell
by the project's own ``seckill.audit`` either, when it is there).
"""

from __future__ import annotations

import json

import pytest

from loadtest.progress import Progress
from loadtest.runner import LoadShape, audit, prepare, run_locust
from loadtest.scenarios import ORDER
from loadtest.server import Stack, server_env
from tests.conftest import TEST_REDIS_URL, database_url_for_subprocesses, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

STOCK = 30
STRATEGIES = ["lock", "redis_atomic"]


def test_flash_crowd_sells_exactly_the_stock(redis_client, tmp_path):
    env = server_env(
        database_url=database_url_for_subprocesses(),
        redis_url=TEST_REDIS_URL,
        var_dir=tmp_path / "var",
        base=subprocess_env(),
    )
    data = prepare(env, tmp_path, users=300, strategies=STRATEGIES, stock=STOCK, migrate=False)
    shape = LoadShape(users=300, duration="7s", spawn_rate=300)
    with Stack(env, tmp_path / "logs", web_workers=2, web_threads=8, celery_concurrency=4) as stack:
        for strategy in STRATEGIES:
            sale_id = data["sales"][strategy]
            results = tmp_path / strategy
            progress = Progress(
                results=results, redis_url=TEST_REDIS_URL, sale_id=sale_id, stock=STOCK
            )
            lines: list[str] = []
            load = run_locust(
                stack.url,
                {
                    "sale_id": sale_id,
                    "tokens": data["tokens"],
                    "greedy_tokens": data["greedy_tokens"],
                    "per_user_limit": 1,
                },
                "flash",
                shape,
                results,
                lambda elapsed: lines.append(progress.line(elapsed)),  # noqa: B023
            )
            progress.close()
            verdict = audit(env, sale_id, results, drain_timeout=30)

            summary = json.dumps({"answers": load["answers"], "audit": verdict}, indent=1)
            assert load["endpoints"][ORDER]["failures"] == 0, summary
            assert load["accepted"] == STOCK, summary
            assert verdict["units_sold"] == STOCK, summary
            assert verdict["clean"], summary
            # a progress line about every second of the window, the last one with the sale done
            assert len(lines) >= 5, lines
            assert f"accepted {STOCK:>6}  sold {STOCK}/{STOCK}  p99 " in lines[-1], lines
            requests = [int(line.split("requests")[1].split()[0]) for line in lines]
            assert requests[-1] >= STOCK and requests[len(requests) // 2] > 0, lines
            project = verdict["project_audit"]  # seckill.audit, when it exists
            if project.get("available"):
                assert project["sale"].get("oversold", 0) == 0, summary
