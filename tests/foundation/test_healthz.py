"""/healthz reports the database, Redis and Celery worker; 503 names what is down."""

import pytest

pytestmark = pytest.mark.django_db


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


def test_healthz_names_celery_without_worker(client, monkeypatch, redis_url):
    """A broker no worker listens on (another database of the test Redis): the check must
    say "celery", not hang. A separate Celery app, so the shared one's pools stay intact."""
    from celery import Celery

    from shop import health

    unused_db = "11" if not redis_url.endswith("/11") else "12"
    monkeypatch.delenv("CELERY_BROKER_URL")  # it would override the broker given below
    # set_as_current=False: shared tasks must stay bound to the project's app.
    probe = Celery(
        "probe", broker=redis_url.rsplit("/", 1)[0] + "/" + unused_db, set_as_current=False
    )
    monkeypatch.setattr(health, "celery_app", probe)
    try:
        response = client.get("/healthz")
    finally:
        probe.close()
    assert response.status_code == 503
    assert response.json()["down"] == ["celery"]
