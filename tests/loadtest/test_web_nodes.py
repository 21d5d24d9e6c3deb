"""Several web nodes on one sale, for real: ``python -m loadtest run --web-nodes 2`` on one Redis,
Celery on RabbitMQ with a queue of a run's own, and ``--redis-cluster`` once the app can use a
Redis Cluster (found out by trying; until then it skips and says why).

Each run is the command line itself, in a tiny configuration (one gunicorn worker per node, a
few seconds of load), against the test database; its output directory's result.json is read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection

from loadtest.cluster import DEFAULT_AMQP_URL, app_cluster_support, check_broker, delete_queue
from loadtest.runner import LoadShape, audit, prepare, run_locust
from loadtest.server import Stack, server_env
from tests.conftest import ROOT, database_url_for_subprocesses, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

TINY = [
    "--web-nodes",
    "2",
    "--users",
    "120",
    "--stock",
    "24",
    "--duration",
    "5s",
    "--web-workers",
    "1",
    "--web-threads",
    "4",
    "--celery-concurrency",
    "2",
]


def loadtest_run(out: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "-m", "loadtest", "run", "--out", str(out), *args]
    done = subprocess.run(
        [*command, "--database-url", database_url_for_subprocesses()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    result = out / "result.json"
    return done, json.loads(result.read_text()) if result.exists() else {}


def assert_split_between_nodes(result: dict, output: str) -> None:
    """Both nodes answered orders and accepted some, and their order ids carry worker ids of
    their own (each node's processes leased theirs from Redis)."""
    nodes = result["nodes"]
    assert len(nodes) == 2 and all(count > 0 for count in nodes.values()), output
    seen = result["audit"]["nodes"]
    assert sorted(seen) == sorted(nodes), output
    assert all(node["accepted"] > 0 for node in seen.values()), output
    first, second = (set(node["worker_ids"]) for node in seen.values())
    assert first and second and not first & second, output


def test_two_web_nodes_on_one_redis_split_the_crowd_and_audit_clean(tmp_path):
    done, result = loadtest_run(tmp_path / "out", *TINY)
    output = done.stdout[-4000:] + done.stderr[-3000:]
    assert done.returncode == 0, output
    assert done.stdout.strip().splitlines()[-1].startswith("PASS: audit clean"), output
    verdict = result["audit"]
    assert verdict["clean"] and verdict["units_sold"] == 24, output
    assert (verdict["oversold"], verdict["lost_orders"], verdict["duplicates"]) == (0, 0, 0)
    assert verdict["limit_violations"] == 0, output
    assert_split_between_nodes(result, output)
    assert result["settings"]["web_nodes"] == 2


def test_celery_on_rabbitmq_with_a_queue_of_its_own(tmp_path):
    """What a cluster run's Celery does, on one Redis: redis_atomic's orders reach the database
    through RabbitMQ, on the run's queue, which is gone afterwards."""
    try:
        check_broker(DEFAULT_AMQP_URL)
    except ConnectionError as exc:
        pytest.skip(str(exc))
    queue = f"loadtest-test-{os.getpid()}"
    env = server_env(
        database_url=database_url_for_subprocesses(),
        redis_url=os.environ["TEST_REDIS_URL"],
        var_dir=tmp_path / "var",
        base=subprocess_env(),
        broker_url=DEFAULT_AMQP_URL,
        celery_queue=queue,
    )
    data = prepare(env, tmp_path, users=60, strategies=["redis_atomic"], stock=12, migrate=False)
    sale_id = data["sales"]["redis_atomic"]
    locust_data = {**data, "sale_id": sale_id}
    shape = LoadShape(users=60, duration="4s", spawn_rate=60)
    try:
        with Stack(env, tmp_path / "logs", web_workers=1, celery_concurrency=2, web_nodes=2) as s:
            load = run_locust(s.urls, locust_data, "flash", shape, tmp_path / "locust")
            verdict = audit(env, sale_id, tmp_path / "locust", drain_timeout=30)
        with Connection(DEFAULT_AMQP_URL) as conn:  # raises when there is no such queue
            assert conn.default_channel.queue_declare(queue, passive=True).message_count == 0
    finally:
        delete_queue(DEFAULT_AMQP_URL, queue)
    summary = json.dumps({"answers": load["answers"], "audit": verdict}, indent=1)
    assert load["accepted"] == 12 and verdict["clean"], summary
    assert verdict["units_sold"] == 12 and verdict["queued_left"] == 0, summary
    assert len(load["nodes"]) == 2, summary


@pytest.mark.cluster
def test_two_web_nodes_on_a_redis_cluster(tmp_path, redis_cluster_handle):
    """The cluster run, tiny: audited clean on the cluster and in the one-Redis comparison,
    both hot-item rates printed with their ratio."""
    try:
        check_broker(DEFAULT_AMQP_URL)
    except ConnectionError as exc:
        pytest.skip(str(exc))
    probe = {**subprocess_env(), "REDIS_URL": redis_cluster_handle.app_url}
    probe["DJANGO_SETTINGS_MODULE"] = "loadtest.settings"
    if reason := app_cluster_support(probe):
        pytest.skip(f"issue 18's app side has not landed: {reason}")
    done, result = loadtest_run(
        tmp_path / "out",
        *TINY,
        "--redis-cluster",
        "--hot-users",
        "16",
        "--hot-duration",
        "4s",
        "--hot-rounds",
        "1",
    )
    output = done.stdout[-4000:] + done.stderr[-3000:]
    assert done.returncode == 0, output
    assert result["settings"]["redis"].startswith("redis+cluster://"), output
    assert result["audit"]["clean"] and result["audit"]["units_sold"] == 24, output
    assert_split_between_nodes(result, output)
    hot = result["hot"]
    runs = [(run["deployment"], run["audit"]["clean"], run["accepted"] > 0) for run in hot["runs"]]
    # one round: the cluster first, then one Redis; each audited clean, each accepted orders
    assert runs == [("Redis Cluster", True, True), ("one Redis", True, True)], output
    assert hot["cluster_accepted_rps"] > 0 and hot["single_accepted_rps"] > 0, output
    assert f"ratio {hot['ratio']:.2f}x" in done.stdout, output
