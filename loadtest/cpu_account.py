"""Where the machine's CPU goes during one slice of load, per answer: the web server, the Celery
worker, Redis, PostgreSQL, the generator, and the kernel and everything else.

Why: a share of ping says how far an order path is from the yardstick, not which cost stops
it, and an in-process profile (``loadtest.bench_request``) sees only the Django process: it
cannot see the Redis server running a script, PostgreSQL committing, the Celery worker writing
the queue, or the kernel carrying loopback traffic. On a machine whose cores are all busy,
throughput is cores divided by the CPU one answer costs all of them together, so these figures
(ms of CPU per answer, by part) are the profile of a benchmark run.

Read from ``/proc``: each process' user and system time (threads included) and the machine's
busy time; a process is counted where its session leader is (the run's gunicorn servers and
Celery worker each lead their own session), or by its name (``redis-server`` on the run's port,
``postgres``, ``wrk``, Locust). PostgreSQL is machine-wide: on a shared machine it includes
other users' queries. "kernel/other" is the machine's busy time no listed process accounts
for: interrupts, loopback networking charged to no one, other programs.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PARTS = ("web", "celery", "redis", "postgres", "generator", "kernel/other")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def machine_ticks(proc: Path = PROC) -> tuple[int, int]:
    """(busy, total) CPU time of all cores since boot, in ticks (busy: idle and iowait left
    out), from ``/proc/stat``."""
    fields = [int(x) for x in (proc / "stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


@dataclass(frozen=True)
class Process:
    """The few fields of ``/proc/<pid>/stat`` (and its command line) the meter needs."""

    name: str
    session: int
    ticks: int  # user + system time of the process and its threads
    command: str

    @classmethod
    def read(cls, pid_dir: Path) -> Process | None:
        """None when the process ended between listing and reading (or is not ours to read)."""
        try:
            stat = (pid_dir / "stat").read_text()
            command = (
                (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:
            return None
        # The name is in parentheses and may itself hold spaces or parentheses.
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        fields = rest.split()
        # fields[0] is the state (field 3 of stat(5)): session is field 6, utime/stime 14/15.
        ticks = int(fields[11]) + int(fields[12])
        return cls(name, int(fields[3]), ticks, command)


@dataclass
class Meter:
    """Counts CPU by part; ``sessions`` maps a session leader's pid to its part."""

    sessions: dict[int, str] = field(default_factory=dict)
    redis_port: int | None = None
    proc: Path = PROC

    def part_of(self, process: Process) -> str | None:
        if process.session in self.sessions:
            return self.sessions[process.session]
        if process.name == "redis-server":
            return "redis" if f":{self.redis_port}" in process.command else None
        if process.name.startswith("postgres"):
            return "postgres"
        if process.name == "wrk" or "locust" in process.command:
            return "generator"
        return None

    def snapshot(self) -> Counter[str]:
        """Ticks so far by part, and ``machine``: all busy ticks of the machine."""
        ticks: Counter[str] = Counter()
        for pid_dir in self.proc.iterdir():
            if not pid_dir.name.isdigit():
                continue
            process = Process.read(pid_dir)
            part = process and self.part_of(process)
            if part:
                ticks[part] += process.ticks
        ticks["machine"] = machine_ticks(self.proc)[0]
        return ticks


def per_answer(
    before: Counter[str], after: Counter[str], answers: int, generator_s: float | None = None
) -> dict[str, float]:
    """Milliseconds of CPU per answer by part (``PARTS``) over a slice, and ``total``.

    A process that started or ended inside the slice counts only what it spent while both
    snapshots saw it, so a generator that runs once per slice (wrk, Locust) is better given
    as ``generator_s``, its own measure of its CPU seconds; what is left of the machine's busy
    time lands in "kernel/other"."""
    if answers <= 0:
        return {}
    scale = 1000 / TICKS_PER_SECOND / answers
    spent = {part: max(0, after[part] - before[part]) for part in PARTS[:-1]}
    if generator_s is not None:
        spent["generator"] = round(generator_s * TICKS_PER_SECOND)
    machine = max(0, after["machine"] - before["machine"])
    spent["kernel/other"] = max(0, machine - sum(spent.values()))
    figures = {part: ticks * scale for part, ticks in spent.items()}
    figures["total"] = machine * scale
    return figures
