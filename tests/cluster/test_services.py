"""Everything else of the engine that keeps state in Redis, on a real three-master cluster:
throttles (keys of two scopes in two slots), the API token cache, purchase tokens, worker-id
leases, the leader lease, the reconciler (a MULTI), expiry by the sweep (Celery on RabbitMQ)
and the API end to end."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from seckill import ids, rate_limit, stock, token_cache
from seckill.keys import sale_keys
from seckill.leader import LeaderLease
from seckill.models import Order, OrderStatus, Sale
from seckill.placement import place_order
from seckill.reconcile import reconcile
from tests.cluster.test_placement import assert_audit_clean
from tests.engine.factories import make_sale
from tests.engine.test_group_commit import wait_runs_out_after_the_request_was_taken

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def buyers(n: int, prefix: str = "c") -> list:
    return [get_user_model().objects.create_user(f"{prefix}{i}") for i in range(n)]


def api_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_throttle_refusal_in_one_slot_charges_no_other_slot(app_on_cluster, settings):
    """Buyer budget 1/min, address budget 5/min, in two slots on two masters. A second order
    of the buyer is refused by the buyer's slot; the address's slot, which the script charged
    in the same pipeline, is refunded: four more buyers from that address still get in (three
    without the refund), the fifth is refused."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "order": "1/min",
            "order_ip": "5/min",
        },
    }
    address = "10.0.0.7"
    buyer_key = rate_limit.scoped_key("order", "u1")
    address_key = rate_limit.scoped_key("order_ip", address)
    nodes = {app_on_cluster.get_node_from_key(k).port for k in (buyer_key, address_key)}
    assert len(nodes) == 2, "the two limits must sit on two masters for this test to mean much"

    assert rate_limit.placement_wait(buyer_id=1, address=address) == 0.0
    charged_once = app_on_cluster.get(address_key)
    assert rate_limit.placement_wait(buyer_id=1, address=address) > 0  # buyer's budget spent
    assert app_on_cluster.get(address_key) == charged_once  # refunded
    allowed = [rate_limit.placement_wait(buyer_id=b, address=address) == 0.0 for b in range(2, 7)]
    assert allowed == [True, True, True, True, False]


def test_throttles_survive_a_script_cache_flush_on_every_master(app_on_cluster):
    """A restarted or promoted master has no scripts: the cluster pipeline loads them again."""
    limits = [(rate_limit.scoped_key("order", "u9"), 5, 60), ("throttle:order_ip:x", 5, 60)]
    assert rate_limit.hit_all(limits) == (True, 0.0)
    app_on_cluster.script_flush()
    assert rate_limit.hit_all(limits) == (True, 0.0)
    assert rate_limit._backoff.available()  # answered by Redis, not the in-process fallback


def test_api_order_replay_and_token_cache_on_the_cluster(app_on_cluster, eager_celery):
    """Sign-in throttles, the token cache, placement and replay through the real API."""
    user = get_user_model().objects.create_user("api-buyer", password="pw-1234-long")
    anonymous = APIClient()
    response = anonymous.post(
        "/api/v1/auth/token/", {"username": "api-buyer", "password": "pw-1234-long"}, format="json"
    )
    assert response.status_code == 200, response.content
    key = response.json()["token"]
    assert app_on_cluster.exists(token_cache.cache_key(key))  # remembered at sign-in
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    sale = make_sale(stock=3, strategy="lock")
    url = f"/api/v1/sales/{sale.pk}/orders/"
    first = client.post(url, {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(url, {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (first.status_code, again.status_code) == (201, 200), (first.content, again.content)
    assert first.json()["order_id"] == again.json()["order_id"]
    assert client.post(url, {"quantity": 1}, format="json").json()["error"]["code"] == (
        "limit_reached"
    )
    assert Order.objects.filter(sale=sale, buyer=user).count() == 1
    assert_audit_clean(sale.pk, app_on_cluster, stock_left=2)


def test_purchase_token_is_single_use_on_the_cluster(app_on_cluster, eager_celery):
    sale = make_sale(stock=5, strategy="redis_atomic", per_user_limit=2)
    Sale.objects.filter(pk=sale.pk).update(require_purchase_token=True)
    (user,) = buyers(1, "pt")
    client = api_client(user)
    token = client.post(f"/api/v1/sales/{sale.pk}/purchase-token/").json()["token"]
    url = f"/api/v1/sales/{sale.pk}/orders/"
    assert (
        client.post(url, {"quantity": 1}, format="json", HTTP_PURCHASE_TOKEN=token).status_code
        == 202
    )
    spent = client.post(url, {"quantity": 1}, format="json", HTTP_PURCHASE_TOKEN=token)
    assert spent.status_code == 403 and spent.json()["error"]["code"] == "purchase_token"


def test_worker_id_lease_and_order_ids_on_the_cluster(app_on_cluster):
    """The lease and its high-water key share the ``{idgen}`` slot: one script updates both."""
    order_id = ids.next_order_id()
    lease = ids.generator().lease
    assert lease is not None and lease.held
    assert ids.parse_order_id(order_id).worker_id == lease.worker_id
    lease_key, hwm_key = lease._keys(lease.worker_id)
    assert lease_key.startswith("{idgen}:worker:")
    assert app_on_cluster.keyslot(lease_key) == app_on_cluster.keyslot(hwm_key)
    assert 0 < app_on_cluster.pttl(lease_key) <= lease.ttl_ms
    lease.renew()
    assert app_on_cluster.get(hwm_key) is not None


def test_leader_lease_on_the_cluster(app_on_cluster):
    first = LeaderLease(app_on_cluster, "cluster-test", ttl=5, node_id="node-a")
    second = LeaderLease(app_on_cluster, "cluster-test", ttl=5, node_id="node-b")
    assert first.try_acquire() and not second.try_acquire()
    assert second.holder() == "node-a"
    term = first.current_term()
    assert first.release() and second.try_acquire()
    assert second.current_term() > term


@pytest.mark.parametrize("strategy", ["lock", "redis_atomic"])
def test_reconcile_repairs_drift_on_the_cluster(strategy, app_on_cluster, persist_tasks_held):
    """The reconciler's look is a MULTI over the sale's slot; its repair a script there."""
    sale = make_sale(stock=10, strategy=strategy, per_user_limit=2)
    for user in buyers(3, f"rc-{strategy}-"):
        place_order(sale.pk, user, 1)
    keys = sale_keys(sale.pk)
    app_on_cluster.set(keys.stock, 99, keepttl=True)
    app_on_cluster.hset(keys.buyers, "424242", 5)
    (result,) = reconcile(sale.pk, settle=0).sales
    assert result.outcome == "repaired", result
    assert stock.read_mirror(sale.pk)["stock"] == 7
    assert 424242 not in stock.read_mirror(sale.pk)["buyers"]


def test_sweep_on_rabbitmq_expires_orders_and_returns_units(
    app_on_cluster, cluster_celery_worker, send_task
):
    """The periodic sweep, sent through RabbitMQ to the worker on the cluster: unpaid orders
    past their window expire and their units go back to the mirror."""
    sale = make_sale(stock=4, strategy="lock_fenced", per_user_limit=1)
    for user in buyers(3, "exp"):
        place_order(sale.pk, user, 1)
    Order.objects.filter(sale=sale).update(pay_by=timezone.now() - timedelta(seconds=1))
    send_task("seckill.sweep")
    deadline = time.monotonic() + 60
    while Order.objects.filter(sale=sale, status=OrderStatus.EXPIRED).count() < 3:
        assert time.monotonic() < deadline, "the worker on RabbitMQ never expired the orders"
        time.sleep(0.2)
    sale.refresh_from_db()
    assert sale.stock_left == 4
    assert_audit_clean(sale.pk, app_on_cluster, stock_left=4)


def test_group_commit_waiter_whose_request_was_taken_gets_its_answer_on_the_cluster(
    app_on_cluster,
):
    """The waiter then reads the answer with the cluster client's own read timeout (a cluster
    client has no connection pool to ask: this was an AttributeError under a loaded crowd)."""
    wait_runs_out_after_the_request_was_taken()
