"""The benchmark's CPU meter (loadtest.cpu_account): real processes, counted by session."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from loadtest.cpu_account import TICKS_PER_SECOND, Meter, Process, per_answer

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def test_a_busy_process_in_a_counted_session_is_charged_to_its_part():
    burner = subprocess.Popen(
        [sys.executable, "-c", BURN.format(seconds=0.6)], start_new_session=True
    )
    meter = Meter(sessions={burner.pid: "web"})
    before = meter.snapshot()
    time.sleep(0.05)
    busy = meter.snapshot()  # the burner has not finished yet: it is still counted
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and meter.snapshot()["web"] - before["web"] < 0.4 * (
        TICKS_PER_SECOND
    ):
        time.sleep(0.05)
    after = meter.snapshot()
    burner.wait(timeout=30)
    assert busy["machine"] >= before["machine"]
    assert after["web"] - before["web"] >= 0.4 * TICKS_PER_SECOND
    figures = per_answer(before, after, answers=10)
    assert figures["web"] >= 40  # 10 answers over >= 0.4 s of web CPU: >= 40 ms each
    assert figures["total"] > 0


def test_an_uncounted_session_is_no_part():
    meter = Meter(sessions={})
    me = Process.read(Path("/proc/self"))
    assert me is not None and meter.part_of(me) is None


def test_names_with_spaces_and_parentheses_are_read(tmp_path: Path):
    pid = tmp_path / "4242"
    pid.mkdir()
    fields = ["S", "1", "4242", "777"] + ["0"] * 7 + ["120", "30"] + ["0"] * 30
    (pid / "stat").write_text("4242 (a (b) c) " + " ".join(fields) + "\n")
    (pid / "cmdline").write_bytes(b"redis-server\x00127.0.0.1:7001\x00")
    process = Process.read(pid)
    assert process == Process("a (b) c", 777, 150, "redis-server 127.0.0.1:7001 ")


def test_redis_is_only_the_runs_own_server():
    meter = Meter(redis_port=7001)
    assert meter.part_of(Process("redis-server", 1, 0, "redis-server 127.0.0.1:7001")) == "redis"
    assert meter.part_of(Process("redis-server", 1, 0, "redis-server 127.0.0.1:6379")) is None
    assert meter.part_of(Process("postgres", 1, 0, "postgres: walwriter")) == "postgres"
    assert meter.part_of(Process("wrk", 1, 0, "wrk -c 64")) == "generator"


def test_per_answer_puts_the_unaccounted_busy_time_in_kernel_other():
    before = Counter(machine=1000, web=100, redis=10)
    after = Counter(machine=1300, web=300, redis=30)  # 300 busy ticks, 220 accounted for
    figures = per_answer(before, after, answers=TICKS_PER_SECOND)  # one answer a tick
    ms = 1000 / TICKS_PER_SECOND / TICKS_PER_SECOND
    assert figures["web"] == pytest.approx(200 * ms)
    assert figures["redis"] == pytest.approx(20 * ms)
    assert figures["kernel/other"] == pytest.approx(80 * ms)
    assert figures["total"] == pytest.approx(300 * ms)
    assert per_answer(before, after, answers=0) == {}
