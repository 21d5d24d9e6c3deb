"""redis-py's OWN lock test suites, run against :class:`seckill.lock.RedisPyCompatibleLock`.

The tests come from the ``redis`` source distribution of the version pinned in
requirements.txt, downloaded by ``pip download`` into var/cache/ (never committed) and run
untouched in a pytest subprocess, with only fixture plumbing of ours (redis_py_suite/*_plumbing.py:
their ``r`` / ``create_redis`` fixtures on a private redis-server, our class as ``Lock``). The
server is private because their asyncio ``r_decoded`` fixture ends with FLUSHALL. Every test of
theirs must pass, or fail as a deliberate difference listed in redis_py_suite/differences.py
(and docs/lock.md) with the expected symptom.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from devtools.redis_server import ROOT, RedisServer
from tests.lock.redis_py_suite.differences import DIFFERENCES

SUITE_FILES = ("tests/test_lock.py", "tests/test_asyncio/test_lock.py")
PLUMBING = Path(__file__).parent / "redis_py_suite"
CACHE = ROOT / "var" / "cache" / "redis-py-sdist"
INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
timeout = 60
markers =
    onlynoncluster: marks tests to be run only with standalone redis
    onlycluster: marks tests to be run only with cluster mode redis
"""


def pinned_redis_version() -> str:
    text = (ROOT / "requirements.txt").read_text()
    match = re.search(r"^redis(?:\[[^\]]*\])?==(\S+)", text, re.MULTILINE)
    assert match, "requirements.txt pins no redis version"
    return match.group(1)


def redis_sdist(version: str) -> Path:
    """The sdist from var/cache/, downloaded there first if missing (skip if impossible)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    sdist = CACHE / f"redis-{version}.tar.gz"
    if not sdist.exists():
        command = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:"]
        command += ["--no-deps", "--disable-pip-version-check", "-q", f"redis=={version}"]
        try:
            done = subprocess.run(
                [*command, "-d", str(CACHE)], capture_output=True, text=True, timeout=300
            )
        except subprocess.TimeoutExpired:
            pytest.skip(f"pip download redis=={version} (sdist) took over 300 s")
        if done.returncode != 0 or not sdist.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            pytest.skip(f"cannot download the redis {version} sdist: {' / '.join(tail)}")
    return sdist


@pytest.fixture(scope="module")
def redis_py_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with redis-py's lock tests, our plumbing as their conftests, and seckill."""
    version = pinned_redis_version()
    where = tmp_path_factory.mktemp("redis-py-suite")
    prefix = f"redis-{version}/"
    wanted = {prefix + name for name in SUITE_FILES}
    wanted |= {prefix + "tests/__init__.py", prefix + "tests/test_asyncio/__init__.py"}
    with tarfile.open(redis_sdist(version)) as sdist:
        members = [m for m in sdist.getmembers() if m.name in wanted]
        assert {m.name for m in members} == wanted, "the sdist lacks redis-py's lock tests"
        for member in members:
            member.name = member.name.removeprefix(prefix)
            sdist.extract(member, where, filter="data")
    shutil.copy(PLUMBING / "sync_plumbing.py", where / "tests" / "conftest.py")
    shutil.copy(PLUMBING / "asyncio_plumbing.py", where / "tests" / "test_asyncio" / "conftest.py")
    (where / "pytest.ini").write_text(INI)
    (where / "seckill").symlink_to(ROOT / "seckill")  # importable without our own `tests`
    return where


def run_suite(where: Path, url: str) -> dict[str, tuple[str, str]]:
    """Run redis-py's suites; test id -> (outcome, failure message)."""
    report = where / "report.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "pytest_asyncio.plugin", "-p", "pytest_timeout", "-c", "pytest.ini"]
    command += ["--rootdir", ".", f"--junitxml={report}", *SUITE_FILES]
    # Only the plugins their suite needs (not ours: Django, hypothesis, playwright...).
    env = {**os.environ, "REDIS_PY_SUITE_URL": url, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(command, cwd=where, env=env, capture_output=True, text=True, timeout=600)
    assert report.exists(), f"redis-py's suite did not run:\n{done.stdout}\n{done.stderr}"
    results = {}
    for case in ET.parse(report).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
                message = f"{child.get('message', '')}\n{child.text or ''}"
        results[test_id] = (outcome, message)
    return results


def test_redis_py_lock_suites_pass_or_fail_only_as_listed_differences(redis_py_suite) -> None:
    server = RedisServer().start()
    try:
        results = run_suite(redis_py_suite, server.url)
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
    failed = {
        test_id: message for test_id, (outcome, message) in results.items() if outcome != "passed"
    }
    listed = {test_id for test_id in failed if test_id in DIFFERENCES}
    passed = len(results) - len(failed)
    print(
        f"\nredis-py {pinned_redis_version()} lock suites against RedisPyCompatibleLock: "
        f"run {len(results)}, passed {passed}, listed differences {len(listed)}"
    )
    unexpected = {test_id: failed[test_id][-800:] for test_id in failed if test_id not in listed}
    assert not unexpected, f"failing, and not a listed difference: {unexpected}"
    assert set(DIFFERENCES) <= set(results), "listed tests that redis-py's suite no longer has"
    no_longer_failing = set(DIFFERENCES) - listed
    assert not no_longer_failing, f"listed as differences but passing now: {no_longer_failing}"
    for test_id in listed:
        reason, symptom = DIFFERENCES[test_id]
        assert re.search(symptom, failed[test_id]), f"{test_id} failed otherwise: {failed[test_id]}"
    assert len(results) >= 89  # redis 8.1.0: 32 sync tests + 2 x 28 async (single, pool) + 1
