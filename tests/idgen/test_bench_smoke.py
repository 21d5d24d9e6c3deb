"""The benchmark runs end to end (tiny time budget), reports every figure and cleans up."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_idgen_smoke(rc, redis_url, prefix) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.bench_idgen",
            "--seconds",
            "0.05",
            "--rounds",
            "1",
            "--json",
            "--redis-url",
            redis_url,
            "--prefix",
            prefix,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert len(report["rates"]) == 8 and all(r > 0 for r in report["rates"].values())
    assert report["snowflake-id package"]["None results in one frozen millisecond"].startswith(
        "905 of 5000"
    )
    assert report["idgen Snowflake"]["duplicate ids, same test"] == 0
    assert not list(rc.scan_iter(match=f"{prefix}:*"))  # cleaned up
