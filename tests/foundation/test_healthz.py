"""/healthz reports the database, Redis and Celery worker; 503 names what is down."""

import pytest
import redis

from devtools.redis_server import RedisServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    return client


def test_healthz_all_up(client, celery_worker):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok" and body["down"] == []
    assert {c["status"] for c in body["components"].values()} == {"up"}


def test_healthz_names_redis_when_it_stops(client, app_redis):
    assert client.get("/healthz").json()["components"]["redis"]["status"] == "up"
    app_redis.stop()
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert "redis" in body["down"]
    assert body["components"]["redis"]["status"] == "down"
    assert "database" not in body["down"]


def test_healthz_names_celery_without_worker(client, monkeypatch):
    """A broker no worker listens on -- a private redis-server of its own, since any database of
    a shared Redis may have an app's worker on it: the check must say "celery", not hang. A
    separate Celery app, so the shared one's pools stay intact."""
    from celery import Celery

    from shop import health

    monkeypatch.delenv("CELERY_BROKER_URL")  # it would override the broker given below
    with RedisServer() as server:
        # set_as_current=False: shared tasks must stay bound to the project's app.
        probe = Celery("probe", broker=server.url, set_as_current=False)
        monkeypatch.setattr(health, "celery_app", probe)
        try:
            response = client.get("/healthz")
        finally:
            probe.close()
    assert response.status_code == 503
    assert response.json()["down"] == ["celery"]


def test_healthz_reports_a_lost_worker_id_lease_and_orders_go_on(staff_client, app_redis):
    """A worker id found in another process's hands (what a Redis wipe let happen before the
    per-host locks): /healthz says so once, and the next order id comes from a fresh lease."""
    from seckill import ids

    first = ids.next_order_id()
    lease = ids.generator().lease
    stolen = lease.worker_id
    app_redis_client = redis.Redis.from_url(app_redis.url)
    app_redis_client.set(lease.key(stolen), "another-process")
    body = staff_client.get("/healthz").json()
    assert "order_ids" in body["down"]
    assert "lease lost" in body["components"]["order_ids"]["detail"]
    after = ids.next_order_id()
    assert after > first and ids.parse_order_id(after).worker_id != stolen
    body = staff_client.get("/healthz").json()
    assert body["components"]["order_ids"]["status"] == "up"
    assert "lost 1x" in body["components"]["order_ids"]["detail"]
    app_redis_client.close()


def test_healthz_counts_a_lease_written_back_after_a_redis_wipe(staff_client, app_redis):
    from seckill import ids

    ids.next_order_id()
    app_redis.restart()  # no persistence: the lease key is gone, the host lock is not
    body = staff_client.get("/healthz").json()
    assert body["components"]["order_ids"]["status"] == "up", body
    assert "re-claimed 1x" in body["components"]["order_ids"]["detail"]


def test_healthz_details_are_for_staff_only(client, staff_client, celery_worker):
    """Anyone may learn up/down (load balancers, bin/run); host and worker names and exception
    text only staff: they map the deployment for an attacker."""
    from django.test import Client

    anonymous = Client().get("/healthz").json()
    assert anonymous["status"] == "ok"
    assert all(set(c) == {"status"} for c in anonymous["components"].values()), anonymous
    staff = staff_client.get("/healthz").json()
    assert "@" in staff["components"]["celery"]["detail"]  # worker names: name@host


def test_head_on_healthz_answers_like_get(client, celery_worker):
    response = client.head("/healthz")
    assert response.status_code == 200 and response.content == b""
