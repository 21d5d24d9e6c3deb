"""Settings come from the environment, with safe defaults when DEBUG is off."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shop.env import database_config, env_bool, env_int, env_list

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("off", False),
        ("", False),
    ],
)
def test_env_bool_words(raw, expected):
    assert env_bool("X", not expected, {"X": raw}) is expected


def test_env_bool_default_and_garbage():
    assert env_bool("X", True, {}) is True
    with pytest.raises(ValueError, match="X='maybe' is not a boolean"):
        env_bool("X", False, {"X": "maybe"})


def test_env_list_and_int():
    assert env_list("H", ["a"], {}) == ["a"]
    assert env_list("H", [], {"H": " a.com, ,b.com "}) == ["a.com", "b.com"]
    assert env_int("N", 5, {"N": "12"}) == 12
    assert env_int("N", 5, {}) == 5
    with pytest.raises(ValueError, match="not an integer"):
        env_int("N", 5, {"N": "twelve"})


def test_sqlite_default_is_wal_with_immediate_transactions(tmp_path):
    config = database_config(None, tmp_path / "db.sqlite3")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "db.sqlite3")
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert config["TEST"]["NAME"] == str(tmp_path / "test_db.sqlite3")


def test_database_url_selects_postgresql(tmp_path):
    config = database_config("postgres://shop:pw@db.internal:5433/sales", tmp_path / "x")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", 5433, "sales")
    assert config["USER"] == "shop" and config["PASSWORD"] == "pw"
    assert config["OPTIONS"]["pool"]["max_size"] == 16 and config["CONN_MAX_AGE"] == 0
    unpooled = database_config("postgres://shop@db/sales", tmp_path / "x", pool_max_size=0)
    assert "pool" not in unpooled["OPTIONS"] and unpooled["CONN_MAX_AGE"] == 60


def load_settings(**env: str) -> subprocess.CompletedProcess:
    """Import the real settings module in a fresh interpreter with exactly this environment."""
    code = (
        "import json; from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in ("
        "'DEBUG','ALLOWED_HOSTS','SESSION_COOKIE_SECURE','SECURE_SSL_REDIRECT',"
        "'SECURE_HSTS_SECONDS','REDIS_URL','CELERY_BROKER_URL')}))"
    )
    base = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "shop.settings"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_secret_key():
    result = load_settings()
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_production_defaults_are_hardened():
    result = load_settings(SECRET_KEY="s3cret", REDIS_URL="redis://cache:6379/2")
    values = json.loads(result.stdout)
    assert values["DEBUG"] is False
    assert "*" not in values["ALLOWED_HOSTS"]
    assert values["SESSION_COOKIE_SECURE"] and values["SECURE_SSL_REDIRECT"]
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    # The broker follows REDIS_URL unless CELERY_BROKER_URL says otherwise.
    assert values["CELERY_BROKER_URL"] == "redis://cache:6379/2"


def test_debug_and_explicit_overrides():
    result = load_settings(
        DEBUG="1", ALLOWED_HOSTS="shop.example", CELERY_BROKER_URL="amqp://guest@127.0.0.1//"
    )
    values = json.loads(result.stdout)
    assert values["DEBUG"] is True and values["ALLOWED_HOSTS"] == ["shop.example"]
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["CELERY_BROKER_URL"] == "amqp://guest@127.0.0.1//"
