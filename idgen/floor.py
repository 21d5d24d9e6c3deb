"""Persistent floors for the date+INCR counter: what keeps it from going backwards on Redis restart.

A Redis without persistence forgets the day's counter when it restarts; ``INCR`` would then count
from 1 again and repeat the morning's order numbers. A *floor store* remembers, somewhere that
survives the restart, a value at or above every counter value ever handed out. Generators reserve
ahead (``raise_to(day, current + block + reserve)``) before Redis may hand out a value past the
stored floor, and a missing day key is re-created from the stored floor.

The store must be shared by every generator process that uses the same Redis key; the file store
suits one host. Across hosts, implement the two methods over the order database, e.g.
``UPDATE idgen_floor SET floor = GREATEST(floor, %s) WHERE day = %s RETURNING floor``.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Protocol


class FloorStore(Protocol):
    """Durable, shared, monotonic per-day floor."""

    def load(self, day: str) -> int:
        """The stored floor for ``day`` (``yyyymmdd``), 0 when none."""
        ...

    def raise_to(self, day: str, value: int) -> int:
        """Durably store ``max(stored, value)`` for ``day`` and return it."""
        ...


class FileFloorStore:
    """A JSON file of ``{yyyymmdd: floor}``, updated under ``flock`` and fsync'd before returning.

    Keeps the last ``keep_days`` days. Safe across processes on one host (one file system).
    """

    def __init__(self, path: str | os.PathLike[str], keep_days: int = 7) -> None:
        self.path = Path(path)
        self.keep_days = keep_days
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def _read(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self.path.read_text()).items()}
        except FileNotFoundError:
            return {}

    def load(self, day: str) -> int:
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            return self._read().get(day, 0)

    def raise_to(self, day: str, value: int) -> int:
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            floors = self._read()
            if floors.get(day, 0) >= value:
                return floors[day]
            floors[day] = value
            kept = dict(sorted(floors.items())[-self.keep_days :])
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            with open(tmp, "w") as f:
                json.dump(kept, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself must survive a crash
            finally:
                os.close(dir_fd)
            return value


class MemoryFloorStore:
    """In-process floor store: for tests and for a Redis that outlives the process anyway."""

    def __init__(self) -> None:
        self.floors: dict[str, int] = {}

    def load(self, day: str) -> int:
        return self.floors.get(day, 0)

    def raise_to(self, day: str, value: int) -> int:
        self.floors[day] = max(self.floors.get(day, 0), value)
        return self.floors[day]
