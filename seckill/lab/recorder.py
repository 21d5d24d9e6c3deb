"""What each attempt of each lab buyer did, and when, on one clock shared by the whole crowd.

An attempt is one call of the placement service. Its probe (``seckill.probes``) stamps the
moments the strategy reports from inside its critical section; the buyer's loop stamps the start
and the answer. Times are milliseconds since the run started (``time.perf_counter``: every buyer
runs in this process, so their stamps compare).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

STAMPS = ("entered", "read", "wrote", "released")  # the first of each counts: the attempt's section


@dataclass
class Attempt:
    buyer: int
    attempt: int
    start: float
    stalled: bool = False
    entered: float | None = None  # took the lock (or the row lock)
    read: float | None = None  # read the stock ...
    stock_read: int | None = None  # ... and saw this many units
    wrote: float | None = None  # committed the stock and the order
    released: float | None = None  # released the lock (a naive DEL: whoever's lock it was)
    end: float | None = None  # the placement service answered
    status: int | None = None  # the HTTP status the API would have sent
    code: str | None = None  # created, accepted, replayed, or the error code; stale_fence
    lock_wait_ms: float | None = None
    fence: int | None = None  # of the lock hold it entered with
    order_fence: int | None = None  # on its order: the hold that decided it (group commit)
    refused: bool = False  # lock_fenced: the database refused this holder's write (stale fence)
    order_id: str | None = None
    # Group commit (lock, lock_fenced): the batch its order was decided in, by whichever buyer
    # held the lock (the one whose section carries the same fence).
    batch_id: str | None = None
    batch_position: int | None = None
    batch_size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Recorder:
    """Every attempt of a run, appended from the buyers' threads."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._attempts: list[Attempt] = []
        self._guard = threading.Lock()

    def now(self) -> float:
        return round((time.perf_counter() - self._t0) * 1000, 3)

    def begin(self, buyer: int, attempt: int, *, stalled: bool = False) -> Attempt:
        record = Attempt(buyer=buyer, attempt=attempt, start=self.now(), stalled=stalled)
        with self._guard:
            self._attempts.append(record)
        return record

    def attempts(self) -> list[Attempt]:
        with self._guard:
            return list(self._attempts)


class AttemptProbe:
    """The probe installed for one attempt: stamps its moments, carries its buyer's settings."""

    def __init__(self, recorder: Recorder, record: Attempt, overrides: dict[str, Any]) -> None:
        self.recorder, self.record, self._overrides = recorder, record, overrides

    def point(self, name: str, **facts: Any) -> None:
        if name == "refused":
            self.record.refused = True
        if name in STAMPS and getattr(self.record, name) is None:
            setattr(self.record, name, self.recorder.now())
        if "stock_left" in facts:
            self.record.stock_read = facts["stock_left"]
        for fact in ("fence", "lock_wait_ms"):
            if facts.get(fact) is not None:
                setattr(self.record, fact, facts[fact])
        if name == "entered" and self.record.lock_wait_ms is None:  # the row lock: no figure
            self.record.lock_wait_ms = round(self.record.entered - self.record.start, 3)

    def overrides(self) -> dict[str, Any]:
        return self._overrides
