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
    broker_url: str | None = None,
    celery_queue: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Production-like settings for every process of a run (web, worker, prepare, audit).

    Celery uses ``redis_url`` as broker and result backend unless ``broker_url`` names another
    broker (RabbitMQ: a Redis Cluster cannot be one); then there is no result backend (nothing
    reads task results) and ``celery_queue`` names the run's own queue on it."""
    env = dict(os.environ if base is None else base)
    env.update(
        DJANGO_SETTINGS_MODULE="loadtest.settings",
        DEBUG="0",
        HTTPS="0",
        SECRET_KEY=env.get("SECRET_KEY") or secrets.token_urlsafe(50),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=broker_url or redis_url,
        CELERY_RESULT_BACKEND="" if broker_url else redis_url,  # "": no result backend
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
    if celery_queue:
        env["CELERY_TASK_DEFAULT_QUEUE"] = celery_queue
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


def celery_worker_command(
    *, concurrency: int, name: str, log_level: str = "warning", heartbeat: bool = False
) -> list[str]:
    """The app's Celery worker as the load tests, the fault rig and the test suite run it: a
    thread pool (the drain and the sweeps wait on Redis and the database, not the CPU), no
    gossip or mingle (nothing to sync at start), and no heartbeats unless asked (a worker
    that is killed or frozen on purpose is watched by its process, not by its peers)."""
    command = [
        sys.executable,
        *("-m", "celery", "-A", "shop", "worker"),
        "--pool=threads",
        f"--concurrency={concurrency}",
        "--without-gossip",
        "--without-mingle",
    ]
    if not heartbeat:
        command.append("--without-heartbeat")
    return [*command, "-l", log_level, "-n", name]


def health(url: str, timeout: float = 2.0) -> dict | None:
    """/healthz's report, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 still carries the report
        return json.loads(exc.read() or b"{}")
    except (OSError, ValueError):
        return None


def distinct_free_ports(count: int) -> list[int]:
    """``count`` different free loopback ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@dataclass
class Stack:
    """gunicorn + Celery worker on 127.0.0.1; ``with Stack(env, log_dir) as stack: stack.url``.

    ``web_nodes`` > 1 starts that many gunicorn servers, each on its own port (``stack.urls``),
    as separate machines would run them: each has its own idgen host-lock directory, so the
    web processes of different nodes are kept from each other's worker ids by their Redis leases
    alone, as on separate hosts. One Celery worker serves them all.
    """

    env: dict[str, str]
    log_dir: Path
    # Many processes with few threads each: a lock holder that comes back from a database or
    # Redis round trip waits for its process's GIL, and the fewer threads compete for it, the
    # shorter the item lock is held (measured: lock 150 vs 82 accepted/s for 6x4 vs 3x16).
    web_workers: int = 6
    web_threads: int = 4
    celery_concurrency: int = 8
    web_nodes: int = 1
    ports: list[int] = field(default_factory=list)
    # gunicorn of the first node, the Celery worker, then the other nodes' gunicorns
    procs: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.web_nodes < 1:
            raise ValueError("web_nodes must be at least 1")
        if not self.ports:
            self.ports = distinct_free_ports(self.web_nodes)
        if len(self.ports) != self.web_nodes:
            raise ValueError(f"{self.web_nodes} web nodes need as many ports, not {self.ports}")

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    @property
    def url(self) -> str:
        return self.urls[0]

    def web_command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "shop.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
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

    def worker_command(self) -> list[str]:
        return celery_worker_command(
            concurrency=self.celery_concurrency, name=f"loadtest-{self.port}@%h"
        )

    def sessions(self) -> dict[int, str]:
        """Each process session of the stack (every leader starts its own) and what it runs:
        ``web`` for a gunicorn server, ``celery`` for the worker (see ``procs``)."""
        return {
            proc.pid: "celery" if index == 1 else "web" for index, proc in enumerate(self.procs)
        }

    def own_lock_dir(self, name: str) -> dict[str, str]:
        """With several nodes, a process group's own idgen host-lock dir, as on its own host."""
        if self.web_nodes == 1:
            return {}
        var = Path(self.env.get("SECKILL_VAR_DIR") or self.log_dir)
        return {"SECKILL_IDGEN_LOCK_DIR": str(var / name / "idgen")}

    def start(self, timeout: float = 60.0) -> Stack:
        # A pool as large as a process's threads: no more PostgreSQL connections than used.
        web_env = {"DB_POOL_MAX_SIZE": str(self.web_threads), **self.env}
        try:
            for node, port in enumerate(self.ports):
                name = "gunicorn.log" if self.web_nodes == 1 else f"gunicorn-{node}.log"
                env = {**web_env, **self.own_lock_dir(f"node-{node}")}
                self.procs.append(start_group(self.web_command(port), env, self.log_dir / name))
                if node == 0:
                    env = {**self.env, **self.own_lock_dir("worker")}
                    log = self.log_dir / "celery.log"
                    self.procs.append(start_group(self.worker_command(), env, log))
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float) -> None:
        """Every node's /healthz ok (database, Redis, a Celery worker, its worker-id lease)."""
        deadline = time.monotonic() + timeout
        waiting = list(self.urls)
        report = None
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[2]} exited early; see logs in {self.log_dir}")
            report = health(waiting[0])
            if report and report.get("status") == "ok":
                waiting.pop(0)
                if not waiting:
                    return
                continue
            time.sleep(0.3)
        raise TimeoutError(f"{waiting[0]}/healthz not ok after {timeout:.0f}s: {report}")

    def stop(self) -> None:
        while self.procs:
            stop_group(self.procs.pop())

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
