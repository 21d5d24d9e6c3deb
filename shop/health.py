"""Health probes for /healthz: each answers (ok, detail) and never raises."""

from __future__ import annotations

from django.db import connection

from seckill.ids import lease_health
from seckill.infrastructure.redis_client import get_redis
from shop.celery import app as celery_app


def check_database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True, connection.vendor
    except Exception as exc:  # any driver error means "down"; the detail says which
        return False, f"{type(exc).__name__}: {exc}"


def check_redis() -> tuple[bool, str]:
    try:
        get_redis().ping()
        return True, "PONG"
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


def check_celery(timeout: float = 1.0) -> tuple[bool, str]:
    """Broadcast a ping and return as soon as one worker answers (limit=1)."""
    try:
        replies = celery_app.control.ping(timeout=timeout, limit=1)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if not replies:
        return False, "no worker answered"
    return True, ", ".join(sorted(name for reply in replies for name in reply))


def check_order_ids() -> tuple[bool, str]:
    """This process's worker-id lease: down when it was found in another process's hands."""
    try:
        return lease_health()
    except Exception as exc:  # Redis down (reported by its own probe too) or no free worker id
        return False, f"{type(exc).__name__}: {exc}"


CHECKS = {
    "database": check_database,
    "redis": check_redis,
    "celery": check_celery,
    "order_ids": check_order_ids,
}


def health_report() -> tuple[bool, dict]:
    """Run every probe; the report names each component as up or down."""
    components = {}
    for name, probe in CHECKS.items():
        ok, detail = probe()
        components[name] = {"status": "up" if ok else "down", "detail": detail}
    down = [name for name, comp in components.items() if comp["status"] == "down"]
    healthy = not down
    return healthy, {
        "status": "ok" if healthy else "degraded",
        "down": down,
        "components": components,
    }


def without_details(report: dict) -> dict:
    """The report for anyone but staff: which components are up or down, not host names,
    worker names or exception text (they map the deployment for an attacker)."""
    components = {name: {"status": c["status"]} for name, c in report["components"].items()}
    return {**report, "components": components}
