"""Where the live web server's Python time goes, per workload: py-spy on the gunicorn workers
while one slice of load runs (``python -m loadtest ceiling --py-spy``).

Why: :mod:`loadtest.cpu_account` says which process a workload's CPU goes to, and
``loadtest.bench_request --profile`` profiles one request in-process, without gunicorn, other
threads or a crowd. This samples the real server under the real crowd: only threads holding
the GIL (``--gil``), so waiting for Redis or PostgreSQL is not counted, and what is left is the
Python work that competes for the cores. py-spy (``pip install py-spy``) reads the processes'
memory from outside: it needs ptrace rights (root, or ``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RATE = 100  # samples per second per process
# "function (path/to/file.py:123)" -> "function (file/path.py)", so one function is one row
LINE_NUMBER = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    """The py-spy beside this Python (a venv's bin) or on PATH; None when not installed."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class ServerProfiler:
    """Records one raw profile per slice of the gunicorn server led by ``pid``."""

    pid: int
    out: Path
    executable: str

    def start(self, name: str, seconds: float) -> subprocess.Popen:
        self.out.mkdir(parents=True, exist_ok=True)
        index = len(list(self.out.glob(f"{name}-*.txt")))
        command = [
            self.executable,
            "record",
            *("--pid", str(self.pid), "--subprocesses", "--gil", "--nonblocking"),
            *("--rate", str(RATE), "--duration", str(max(1, round(seconds)))),
            *("--format", "raw", "--output", str(self.out / f"{name}-{index}.txt")),
        ]
        return subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )

    @staticmethod
    def finish(recording: subprocess.Popen, seconds: float) -> None:
        try:
            recording.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            recording.kill()
            recording.wait()


def function_shares(raw_files: list[Path]) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, inclusive samples per function, own samples per function) of py-spy raw
    files: one line per distinct stack, "frame;frame;...;frame count"."""
    total, inclusive, own = 0, Counter(), Counter()
    for path in raw_files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = [
                LINE_NUMBER.sub(")", f) for f in stack.split(";") if not f.startswith("process ")
            ]
            if not frames:
                continue
            samples = int(count)
            total += samples
            for frame in set(frames):
                inclusive[frame] += samples
            own[frames[-1]] += samples
    return total, inclusive, own


def summary(out: Path, rows: int = 40) -> Path | None:
    """``summary.md`` in ``out``: for every workload profiled, the functions holding the most
    of its GIL samples, inclusive and own. None when nothing was recorded."""
    names = sorted({path.name.rsplit("-", 1)[0] for path in out.glob("*-*.txt")})
    if not names:
        return None
    lines = [
        "# Web server profile per workload (py-spy, GIL-holding samples only)",
        "",
        "Shares of each workload's samples; a function's inclusive share counts the time in it "
        "and in everything it called. Raw stacks: the .txt files beside this one "
        "(flamegraph.pl or speedscope read them).",
    ]
    for name in names:
        total, inclusive, own = function_shares(sorted(out.glob(f"{name}-*.txt")))
        lines += ["", f"## {name}: {total} samples", "", "| inclusive | own | function |"]
        lines += ["| --- | --- | --- |"]
        for frame, samples in inclusive.most_common(rows):
            lines.append(f"| {samples / total:.1%} | {own[frame] / total:.1%} | `{frame}` |")
        lines += ["", "Most own time:", ""]
        lines += [f"- {s / total:.1%} `{frame}`" for frame, s in own.most_common(15)]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path
