"""What a lab run may be asked to do, and its bounds (a run shares the machine with the shop)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from seckill.errors import InvalidRequest
from seckill.models import Strategy

# name: (lowest, highest, default). Milliseconds and seconds as the page shows them.
BOUNDS: dict[str, tuple[int, int, int]] = {
    "stock": (1, 1000, 10),
    "buyers": (1, 500, 40),
    "delay_ms": (0, 1000, 50),
    "lease_ms": (20, 10_000, 1000),
    "stall_ms": (0, 5000, 0),
    "time_limit_s": (1, 60, 20),
}
# Strategies whose buyers hold a lock with a lease (the lease parameter applies to them).
LEASED = frozenset({Strategy.NAIVE_LOCK, Strategy.LOCK, Strategy.LOCK_FENCED})


@dataclass(frozen=True)
class RunParameters:
    """One run's knobs. ``delay_ms`` widens every critical section (between reading the stock
    and writing it); ``lease_ms`` is the item lock's lease; with ``stall_ms``, buyer 1 freezes
    that long inside its critical section and its lease is not renewed, as a stopped process's
    would not be."""

    strategy: str = Strategy.UNSAFE
    stock: int = BOUNDS["stock"][2]
    buyers: int = BOUNDS["buyers"][2]
    delay_ms: int = BOUNDS["delay_ms"][2]
    lease_ms: int = BOUNDS["lease_ms"][2]
    stall_ms: int = BOUNDS["stall_ms"][2]
    time_limit_s: int = BOUNDS["time_limit_s"][2]

    def __post_init__(self) -> None:
        if self.strategy not in Strategy.values:
            raise InvalidRequest(f"strategy must be one of {', '.join(Strategy.values)}")
        for name, (low, high, _) in BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidRequest(f"{name} must be a whole number from {low} to {high}")
        if self.stall_ms and self.strategy == Strategy.REDIS_ATOMIC:
            raise InvalidRequest("redis_atomic has no critical section in Python to stall in")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunParameters:
        known = {name: data[name] for name in ("strategy", *BOUNDS) if name in data}
        return cls(**known)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def overrides(self, *, stalled: bool) -> dict[str, Any]:
        """The settings a buyer of this run places its order with (see ``seckill.probes``)."""
        lease = self.lease_ms / 1000
        pause = (self.stall_ms if stalled else self.delay_ms) / 1000
        values: dict[str, Any] = {
            "SECKILL_CRITICAL_SECTION_DELAY": pause,
            "SECKILL_LOCK_TTL": lease,
            "SECKILL_NAIVE_LOCK_TTL": lease,
        }
        if stalled:
            values["SECKILL_LOCK_WATCHDOG"] = False
        return values
