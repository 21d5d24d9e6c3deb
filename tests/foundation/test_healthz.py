"""/healthz reports the database, Redis and Celery worker; 503 names what is down."""

import pytest

from devtools.redis_server import RedisServer
from shop.redis_client import get_redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_redis(settings):
    """Point the app's Redis client at a private server the test may stop."""
    server = RedisServer().start()
    settings.REDIS_URL = server.url
    get_redis.cache_clear()
    yield server
    server.stop()
    get_redis.cache_clear()


def test_healthz_all_up(client, celery_worker):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok" and body["down"] == []
    assert {c["status"] for c in body["components"].values()} == {"up"}


def test_healthz_names_redis_when_it_stops(client, private_redis):
    assert client.get("/healthz").json()["components"]["redis"]["status"] == "up"
    private_redis.stop()
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert "redis" in body["down"]
    assert body["components"]["redis"]["status"] == "down"
    assert "database" not in body["down"]


def test_healthz_names_celery_without_worker(client, settings):
    # A broker no worker listens on: the check must say "celery", not hang.
    from shop.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:6379/11"
    app.pool.force_close_all()
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = original
        app.pool.force_close_all()
    assert response.status_code == 503
    assert response.json()["down"] == ["celery"]
