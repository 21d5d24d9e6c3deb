"""``python -m loadtest``: --help documents every option, missing prerequisites stop the run
at once with one line saying what to do, and the verdict is one PASS/FAIL line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from loadtest.__main__ import parser
from loadtest.verdict import verdict_line
from tests.conftest import ROOT


def cli(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "loadtest"]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [*command, *([] if code else args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def subcommands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("command", ["run", "compare", "ceiling"])
def test_help_explains_every_option_with_its_default(command):
    sub = subcommands()[command]
    text = " ".join(sub.format_help().split())
    for action in sub._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{action.option_strings} has no help"
        if action.default not in (None, False):
            shown = action.default
            shown = " ".join(shown) if isinstance(shown, list) else shown
            assert f"(default: {shown})" in text, action.option_strings
        elif action.default is None:
            assert "default" in action.help, f"{action.option_strings}: say what the default is"


def test_help_runs_from_the_command_line():
    done = cli("run", "--help")
    assert done.returncode == 0 and "(default: 2000)" in done.stdout


def test_bad_duration_is_refused_by_the_parser():
    done = cli("run", "--duration", "soon")
    assert done.returncode == 2 and "not a duration" in done.stderr


def test_missing_locust_is_said_before_anything_runs(tmp_path):
    out = tmp_path / "out"
    hide_locust = "import sys; sys.modules['locust'] = None; from loadtest.__main__ import main; "
    done = cli("run", "--out", str(out), code=hide_locust + "sys.exit(main(sys.argv[1:]))")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: Locust is not installed: .venv/bin/pip install -r requirements-dev.txt "
        "(bin/test installs it too)"
    ]
    assert not out.exists()


def test_redis_that_does_not_answer_is_said_at_once(tmp_path):
    done = cli("run", "--redis-url", "redis://127.0.0.1:1/0", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: --redis-url redis://127.0.0.1:1/0 does not answer")
    assert len(done.stderr.strip().splitlines()) == 1


def test_database_that_does_not_exist_is_named(tmp_path):
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2).close()
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    url = "postgres://postgres@127.0.0.1:5432/loadtest_cli_no_such_db"
    done = cli("run", "--database-url", url, "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith('error: database "loadtest_cli_no_such_db" does not exist on 127.0.0.1')
    assert not (tmp_path / "o").exists()


def audit(**overrides) -> dict:
    clean = {
        "oversold": 0,
        "lost_orders": 0,
        "duplicates": 0,
        "limit_violations": 0,
        "queued_left": 0,
        "conserved": True,
        "settled": True,
        "keys_without_ttl": [],
        "units_sold": 50,
        "stock_total": 50,
    }
    return {**clean, **overrides}


def phase(strategy: str, **overrides) -> dict:
    return {"strategy": strategy, "scenario": "flash", "audit": audit(**overrides)}


def test_verdict_is_one_pass_or_fail_line():
    passed, line = verdict_line([phase("lock"), phase("unsafe", oversold=3, units_sold=53)])
    assert passed and line.startswith("PASS: audit clean (lock flash sold 50/50)")
    assert "teaching strategies (wrong on purpose): unsafe flash: oversold 3" in line
    passed, line = verdict_line([phase("redis_atomic", lost_orders=2, keys_without_ttl=["k"])])
    assert not passed
    assert line == "FAIL: redis_atomic flash: lost 2, 1 keys without TTL"
