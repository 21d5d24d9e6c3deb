"""The system under test: gunicorn (gthread) and a Celery worker as subprocesses.

Each process is started in its own session (process group) and stopped by signalling the whole
group — SIGTERM, then SIGKILL after a grace period — so gunicorn's workers and Celery's threads
never outlive a run, even when the run fails half-way. ``Stack`` is a context manager for that.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
# Throttles raised: the load generator is one address, and every buyer sends many requests.
RAISED_RATE = "1000000/s"


def server_env(
    *,
    database_url: str,
    redis_url: str,
    var_dir: Path,
    base: dict[str, str] | None = None,
    critical_section_delay: float = 0.0,
    naive_lock_ttl: float | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Production-like settings for every process of a run (web, worker, prepare, audit)."""
    env = dict(os.environ if base is None else base)
    env.update(
        DJANGO_SETTINGS_MODULE="loadtest.settings",
        DEBUG="0",
        HTTPS="0",
        SECRET_KEY=env.get("SECRET_KEY") or secrets.token_urlsafe(50),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        CELERY_RESULT_BACKEND=redis_url,
        SECKILL_VAR_DIR=str(var_dir),
        SECKILL_THROTTLE_ORDER=RAISED_RATE,
        SECKILL_THROTTLE_ORDER_IP=RAISED_RATE,
        SECKILL_THROTTLE_AUTH=RAISED_RATE,
        SECKILL_THROTTLE_PURCHASE_TOKEN=RAISED_RATE,
        SECKILL_THROTTLE_PURCHASE_TOKEN_IP=RAISED_RATE,
        SECKILL_CRITICAL_SECTION_DELAY=str(critical_section_delay),
        LOG_LEVEL=env.get("LOADTEST_LOG_LEVEL", "WARNING"),
        PYTHONPATH=str(ROOT),
    )
    if naive_lock_ttl is not None:
        env["SECKILL_NAIVE_LOCK_TTL"] = str(naive_lock_ttl)
    env.update(extra or {})
    return env


def stop_group(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL it. Safe to call twice."""
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure nothing else of its group lingers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def start_group(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``cmd`` as the leader of a new process group, output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def health(url: str, timeout: float = 2.0) -> dict | None:
    """/healthz's report, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 still carries the report
        return json.loads(exc.read() or b"{}")
    except (OSError, ValueError):
        return None


@dataclass
class Stack:
    """gunicorn + Celery worker on 127.0.0.1; ``with Stack(env, log_dir) as stack: stack.url``."""

    env: dict[str, str]
    log_dir: Path
    # Many processes with few threads each: a lock holder that comes back from a database or
    # Redis round trip waits for its process's GIL, and the fewer threads compete for it, the
    # shorter the item lock is held (measured: lock 150 vs 82 accepted/s for 6x4 vs 3x16).
    web_workers: int = 6
    web_threads: int = 4
    celery_concurrency: int = 8
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Stack:
        py = sys.executable
        web = [
            py,
            "-m",
            "gunicorn",
            "shop.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--worker-class",
            "gthread",
            "--workers",
            str(self.web_workers),
            "--threads",
            str(self.web_threads),
            "--backlog",
            "4096",
            "--keep-alive",
            "30",
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
        ]
        worker = [
            py,
            "-m",
            "celery",
            "-A",
            "shop",
            "worker",
            "--pool=threads",
            f"--concurrency={self.celery_concurrency}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
            "-n",
            f"loadtest-{self.port}@%h",
        ]
        try:
            # A pool as large as a process's threads: no more PostgreSQL connections than used.
            web_env = {"DB_POOL_MAX_SIZE": str(self.web_threads), **self.env}
            self.procs.append(start_group(web, web_env, self.log_dir / "gunicorn.log"))
            self.procs.append(start_group(worker, self.env, self.log_dir / "celery.log"))
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        report = None
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[2]} exited early; see logs in {self.log_dir}")
            report = health(self.url)
            if report and report.get("status") == "ok":
                return
            time.sleep(0.3)
        raise TimeoutError(f"{self.url}/healthz not ok after {timeout:.0f}s: {report}")

    def stop(self) -> None:
        while self.procs:
            stop_group(self.procs.pop())

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
