"""``python -m idgen``: mint, parse, encode and decode from the shell."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "idgen", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_snowflake_count_and_parse() -> None:
    out = run("snowflake", "--count", "5", "--worker-id", "9")
    ids = [int(line) for line in out.stdout.split()]
    assert out.returncode == 0 and len(ids) == 5 and ids == sorted(set(ids))
    parsed = json.loads(run("parse", str(ids[0])).stdout)
    assert parsed["worker_id"] == 9 and parsed["datetime"].endswith("+00:00")


def test_snowflake_leases_with_redis(rc, redis_url, prefix) -> None:
    out = run("snowflake", "--count", "2", "--redis-url", redis_url, "--prefix", prefix)
    assert out.returncode == 0 and len(out.stdout.split()) == 2
    assert rc.exists(f"{prefix}:worker:0:hwm") and not rc.exists(f"{prefix}:worker:0")


def test_date_ids(redis_url, prefix) -> None:
    out = run(
        "date", "--count", "3", "--segment", "10", "--redis-url", redis_url, "--prefix", prefix
    )
    ids = [int(x) for x in out.stdout.split()]
    assert out.returncode == 0 and ids[1] == ids[0] + 1
    parsed = json.loads(run("parse", str(ids[0]), "--kind", "date").stdout)
    assert parsed["counter"] == 1


def test_encode_decode() -> None:
    public = run("encode", "12345", "--key", "k").stdout.strip()
    assert run("decode", public, "--key", "k").stdout.strip() == "12345"
    bad = run("decode", "nonsense", "--key", "k")
    assert bad.returncode == 2 and "error" in bad.stderr
