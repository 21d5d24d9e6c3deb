"""bin/test and bin/run's Redis: which one is said on screen, SECKILL_PRIVATE_REDIS=1 forces a
private server even when another Redis is configured, and bin/run's private server keeps an
append-only file that brings the data back after the server is killed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import redis

from devtools.redis_server import port_answers
from tests.conftest import ROOT, TEST_REDIS_URL


def test_bin_test_says_which_redis_and_database_and_can_go_private():
    env = {**os.environ, "SECKILL_PRIVATE_REDIS": "1", "TEST_REDIS_URL": TEST_REDIS_URL}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        ["bin/test", "--version"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert (
        "SECKILL_PRIVATE_REDIS=1: starting a private redis-server (ignoring TEST_REDIS_URL)" in out
    )
    port = int(re.search(r"private redis-server \(.*\) at redis://127\.0\.0\.1:(\d+)/0", out)[1])
    assert f"redis://127.0.0.1:{port}/0" not in TEST_REDIS_URL
    assert "database: SQLite, pytest-django's throwaway test database" in out
    assert not port_answers("127.0.0.1", port)  # stopped with the run


def test_private_redis_with_aof_keeps_data_across_a_kill(tmp_path):
    def start() -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.redis_server", "start"]
            + ["--dir", str(tmp_path / "data"), "--appendfsync", "everysec"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        return proc, proc.stdout.readline().strip()

    proc, url = start()
    try:
        client = redis.Redis.from_url(url)
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.set("accepted", "order-1")
        client.execute_command("BGREWRITEAOF")  # on disk now, not in a second's time
        while client.info("persistence")["aof_rewrite_in_progress"]:
            pass
        os.killpg(proc.pid, signal.SIGKILL)  # the server dies without a clean shutdown
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    proc, url = start()
    try:
        assert redis.Redis.from_url(url).get("accepted") == b"order-1"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
