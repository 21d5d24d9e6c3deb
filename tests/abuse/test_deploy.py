"""Production configuration: secrets only from the environment, DEBUG off where it runs for
real (load tests, compose), security headers on every response, and ``manage.py check
--deploy`` clean at WARNING level for the production settings."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.server import server_env
from tests.conftest import ROOT


def production_env(**extra: str) -> dict[str, str]:
    """A production-like environment: nothing inherited but PATH, secrets generated."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "shop.example.com",
        "SECKILL_VAR_DIR": os.environ.get("SECKILL_VAR_DIR", str(ROOT / "var")),
        **extra,
    }


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_for_production_settings():
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout + done.stderr


def test_check_deploy_fails_when_hardening_is_switched_off():
    """The check above can fail: with HTTPS off it reports the missing HSTS/secure cookies."""
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(HTTPS="0"))
    assert done.returncode != 0 and "security.W004" in done.stdout + done.stderr


def test_load_test_servers_run_with_debug_off_and_a_generated_secret(tmp_path):
    env = server_env(
        database_url="sqlite:///x", redis_url="redis://h/0", var_dir=tmp_path, base={"PATH": "/bin"}
    )
    assert env["DEBUG"] == "0"
    assert len(env["SECRET_KEY"]) >= 50
    other = server_env(
        database_url="sqlite:///x", redis_url="redis://h/0", var_dir=tmp_path, base={"PATH": "/bin"}
    )
    assert other["SECRET_KEY"] != env["SECRET_KEY"]  # never a constant in the code


def test_compose_runs_with_debug_off_and_secret_from_environment():
    compose = Path(ROOT / "docker-compose.yml").read_text()
    assert re.findall(r"DEBUG:\s*\"?(\w+)", compose) and all(
        v in ("0", "false", "False") for v in re.findall(r"DEBUG:\s*\"?(\w+)", compose)
    )
    assert "${SECRET_KEY" in compose


@pytest.mark.django_db
def test_security_headers_on_api_and_pages(client, redis_client):
    for path in ("/api/v1/sales/", "/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"
        csp = response["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
        assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/", "/healthz", "/accounts/login/", "/accounts/signup/", "/api/v1/sales/"]
)
def test_head_answers_like_get_without_a_body(client, redis_client, celery_worker, path):
    """Monitors and caches send HEAD; require_GET answered them 405."""
    response = client.head(path)
    assert response.status_code == 200, path
    assert response.content == b""
