"""One master of a private three-master cluster SIGKILLed mid-sale: what the app answers, and
what is left after the master comes back (restarted on its port: it rejoins with its slots).

While it is down, a placement on a sale of its slots answers 503 ``unavailable`` with
Retry-After at once (never a 500, never a hang) and, on a cluster that does not require full
coverage, sales on the other masters go on selling; with Redis' default (full coverage) every
sale answers 503 once the others have marked the master failed.
Without persistence the master comes back empty: the safe lock strategies rebuild the mirror
from the database (the record) and sell on, with a clean audit. redis_atomic's accepted-but-not
-yet-written orders (202s) lived only on that master: without persistence they are gone, with
AOF (``appendfsync always``) they survive the crash and are written by the next drain.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from seckill import order_queue
from seckill.audit import audit
from seckill.ids import CLUSTER_LEASE_PREFIX
from seckill.keys import sale_keys
from seckill.models import Order
from tests.cluster.conftest import NODE_TIMEOUT_S
from tests.engine.factories import make_sale

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

AOF_ALWAYS = ["--appendonly", "yes", "--appendfsync", "always"]


def api_client(name: str) -> APIClient:
    user = get_user_model().objects.create_user(name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def order(client: APIClient, sale_id: int):
    return client.post(f"/api/v1/sales/{sale_id}/orders/", {"quantity": 1}, format="json")


def sales_on_two_masters(handle, strategy: str, stock: int = 20):
    """(doomed sale, healthy sale): on two masters, neither the one of the worker-id leases
    (this process keeps its lease for the test; a lost lease is tests/idgen's subject)."""
    lease_master = handle.server_for(f"{CLUSTER_LEASE_PREFIX}:worker:0").port
    by_master: dict[int, object] = {}
    while len(by_master) < 2:
        sale = make_sale(stock=stock, strategy=strategy, per_user_limit=1)
        port = handle.server_for(sale_keys(sale.pk).stock).port
        if port != lease_master:
            by_master.setdefault(port, sale)
    doomed, healthy = by_master.values()
    return doomed, healthy


def wait_until_serving(client, key: str, timeout: float = 60.0) -> None:
    """Until the restarted master answers for ``key``'s slot again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.exists(key)
            return
        except Exception:
            assert time.monotonic() < deadline, "the restarted master never served its slots"
            time.sleep(0.2)


def assert_refused_unavailable(response) -> None:
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "unavailable"
    assert response["Retry-After"]


@pytest.mark.parametrize("strategy", ["lock", "lock_fenced", "db_row_lock"])
def test_dead_master_is_503_for_its_sales_and_the_sale_goes_on_after_restart(
    strategy, private_cluster, eager_celery
):
    handle = private_cluster()
    doomed, healthy = sales_on_two_masters(handle, strategy)
    buyers = [api_client(f"{strategy}-{i}") for i in range(8)]
    for client in buyers[:2]:
        assert order(client, doomed.pk).status_code == 201
        assert order(client, healthy.pk).status_code == 201

    master = handle.server_for(sale_keys(doomed.pk).stock)
    master.kill()
    # Before and after the other masters mark it failed (cluster-node-timeout).
    deadline = time.monotonic() + NODE_TIMEOUT_S + 2
    answers = 0
    while time.monotonic() < deadline or answers < 3:
        assert_refused_unavailable(order(buyers[2], doomed.pk))
        assert buyers[2].get(f"/api/v1/sales/{doomed.pk}/").status_code == 200  # db figures
        answers += 1
        time.sleep(0.5)
    for client in buyers[2:4]:
        assert order(client, healthy.pk).status_code == 201
    assert Order.objects.filter(sale=doomed).count() == 2  # nothing half-written

    master.start()  # same port and nodes.conf: it rejoins with its slots, empty
    wait_until_serving(handle.client, sale_keys(doomed.pk).stock)
    for client in buyers[2:6]:
        assert order(client, doomed.pk).status_code == 201  # mirror rebuilt from the database
    report = audit(doomed.pk, settle=0)
    assert report["ok"], report
    (entry,) = report["sales"]
    assert entry["units_sold"] == 6 and entry["oversold"] == 0, entry


@pytest.mark.parametrize(
    ("persistence", "kept"), [(None, False), (AOF_ALWAYS, True)], ids=["no-persistence", "aof"]
)
def test_redis_atomic_202s_on_a_dead_master(persistence, kept, private_cluster, persist_tasks_held):
    """202s still queued on the master that dies: lost without persistence (the audit cannot
    see them: nothing else recorded them), written after the restart with AOF."""
    handle = private_cluster(*(persistence or []))
    doomed, _ = sales_on_two_masters(handle, "redis_atomic", stock=10)
    accepted = []
    for i in range(4):
        response = order(api_client(f"atomic-{i}"), doomed.pk)
        assert response.status_code == 202, response.content
        accepted.append(int(response.json()["order_id"]))
    master = handle.server_for(sale_keys(doomed.pk).stock)
    master.kill()
    assert_refused_unavailable(order(api_client("atomic-late"), doomed.pk))
    master.start()
    wait_until_serving(handle.client, sale_keys(doomed.pk).queued)
    order_queue.drain(doomed.pk)
    written = set(Order.objects.filter(sale=doomed).values_list("pk", flat=True))
    assert written == (set(accepted) if kept else set())
    report = audit(doomed.pk, settle=0)
    assert report["ok"], report


def cluster_state(server) -> str:
    import redis

    with redis.Redis(port=server.port, socket_timeout=2) as client:
        return client.cluster("info")["cluster_state"]


def test_full_coverage_cluster_refuses_every_sale_with_503_once_a_master_failed(
    private_cluster, eager_celery
):
    """With ``cluster-require-full-coverage yes`` (Redis' default) the living masters refuse
    every command with CLUSTERDOWN once one master is marked failed: the app says 503 for the
    sales they serve too, not 500."""
    handle = private_cluster("--cluster-require-full-coverage", "yes")
    doomed, healthy = sales_on_two_masters(handle, "lock")
    assert order(api_client("cov-1"), healthy.pk).status_code == 201
    master = handle.server_for(sale_keys(doomed.pk).stock)
    living = handle.server_for(sale_keys(healthy.pk).stock)
    master.kill()
    deadline = time.monotonic() + 60
    while cluster_state(living) != "fail":
        assert time.monotonic() < deadline, "the living masters never marked the cluster failed"
        time.sleep(0.2)
    assert_refused_unavailable(order(api_client("cov-2"), healthy.pk))
    assert Order.objects.filter(sale=healthy).count() == 1
