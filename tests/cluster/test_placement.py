"""Placement on a real three-master Redis Cluster: every safe strategy under a concurrent crowd
of threads and of processes sells exactly the stock, holds the per-buyer limit, answers
replayed Idempotency-Keys with the first order, and the audit finds nothing. The process crowd
runs against a real Celery worker on RabbitMQ (redis_atomic's drain)."""

from __future__ import annotations

import pytest

from seckill.audit import audit
from seckill.keys import sale_keys
from tests.cluster.conftest import cluster_env
from tests.engine.crowd import run_processes, run_threads
from tests.engine.factories import make_sale
from tests.engine.test_concurrency import SAFE, assert_sold_exactly_the_stock, make_crowd

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

# Half of tests/engine's crowd (the same mix: replays and second tries), to fit CI's budget.
CROWD, USERS, REPLAYS, STOCK = 100, 75, 12, 25


def crowd():
    return make_crowd(CROWD, USERS, REPLAYS)


def assert_audit_clean(sale_id: int, client, stock_left: int = 0) -> None:
    """The mirror is on the cluster (``stock_left`` units, sold out by default), and the audit
    finds no violation and no warning (a key without TTL included) but id inversions, which it
    calls normal: ids come from several processes' clocks, redis_atomic rows are written when
    the drain gets to them, and group commit issues an id when the request is queued."""
    assert client.get(sale_keys(sale_id).stock) == str(stock_left).encode()
    report = audit(sale_id, client=client, settle=0)
    (entry,) = report["sales"]
    assert report["ok"], report
    warnings = {w["code"] for w in entry["warnings"]} - {"id_inversions"}
    assert entry["oversold"] == 0 and not warnings, entry


def test_sale_keys_are_spread_over_the_masters(app_on_cluster, redis_cluster_handle):
    """A sale's keys share one slot, and different sales land on different masters: the
    cluster really shares the load (a test that could pass on one server proves nothing)."""
    masters = {
        redis_cluster_handle.server_for(sale_keys(sale_id).stock).port for sale_id in range(1, 40)
    }
    assert len(masters) == 3
    slots = {app_on_cluster.keyslot(key) for key in sale_keys(7).all()}
    assert len(slots) == 1


@pytest.mark.parametrize("strategy", SAFE)
def test_thread_crowd_on_the_cluster(strategy, app_on_cluster, eager_celery):
    """100 threads over 75 buyers (12 replays, 13 second tries), 25 units."""
    sale = make_sale(stock=STOCK, strategy=strategy, per_user_limit=1)
    outcomes = run_threads(sale.pk, crowd())
    assert_sold_exactly_the_stock(sale, outcomes)
    assert_audit_clean(sale.pk, app_on_cluster)


@pytest.mark.parametrize("strategy", SAFE)
def test_process_crowd_on_the_cluster_with_rabbitmq(
    strategy,
    app_on_cluster,
    redis_cluster_handle,
    rabbitmq_url,
    cluster_queue,
    cluster_celery_worker,
):
    """Four processes on the cluster; redis_atomic's 202s are written by the Celery worker,
    which gets its drains through RabbitMQ."""
    sale = make_sale(stock=STOCK, strategy=strategy, per_user_limit=1)
    env = cluster_env(redis_cluster_handle, rabbitmq_url, cluster_queue)
    outcomes = run_processes(sale.pk, crowd(), env)
    assert len(outcomes) == CROWD
    assert_sold_exactly_the_stock(sale, outcomes)
    assert_audit_clean(sale.pk, app_on_cluster)
