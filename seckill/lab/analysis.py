"""A run's records turned into the page's figures: answers, units sold over time, lock waits,
fence refusals, and the timeline of critical sections with the overlapping ones marked.

Pure functions of the attempts (``recorder.Attempt``), so the live view and the kept run are the
same computation, and tests can check it on hand-made records.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from seckill.lab.recorder import Attempt

SOLD_CODES = frozenset({"created", "accepted"})
TIMELINE_LIMIT = 1000  # bars sent to the page (a 500-buyer run enters far fewer sections)


@dataclass(frozen=True)
class Section:
    """One attempt's time inside the critical section: entering (or reading) to writing."""

    index: int
    buyer: int
    start: float
    end: float
    wrote: bool
    refused: bool  # lock_fenced refused its write: it held nothing the database honoured


def sections(attempts: Sequence[Attempt]) -> list[Section]:
    found = []
    for index, a in enumerate(attempts):
        start = a.entered if a.entered is not None else a.read
        if start is None:
            continue
        end = next((t for t in (a.wrote, a.released, a.end) if t is not None), start)
        found.append(
            Section(index, a.buyer, start, max(end, start), a.wrote is not None, a.refused)
        )
    return sorted(found, key=lambda s: (s.start, s.end))


def overlapping(found: Sequence[Section]) -> set[int]:
    """Indexes of sections that shared time with another holder. A refused writer is no holder
    (the fence made its lapse harmless), so it is not counted against the others."""
    holders = [s for s in found if not s.refused]
    marked: set[int] = set()
    for i, s in enumerate(holders):
        for other in holders[i + 1 :]:
            if other.start >= s.end:
                break
            marked.update((s.index, other.index))
    return marked


def most_at_once(found: Iterable[Section]) -> int:
    edges = sorted(
        [(s.start, 1) for s in found if not s.refused]
        + [(s.end, -1) for s in found if not s.refused],
        key=lambda edge: (edge[0], edge[1]),
    )
    inside = highest = 0
    for _, step in edges:
        inside += step
        highest = max(highest, inside)
    return highest


def stale_readers(attempts: Sequence[Attempt]) -> list[int]:
    """Attempts that read the stock while another attempt had read it and not yet written."""
    windows = [(a.read, a.wrote) for a in attempts if a.read is not None and a.wrote is not None]
    return [
        i
        for i, a in enumerate(attempts)
        if a.read is not None
        and any(r < a.read < w and (r, w) != (a.read, a.wrote) for r, w in windows)
    ]


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(p / 100 * len(ordered)) - 1)
    return round(ordered[rank], 1)


def sold_over_time(attempts: Sequence[Attempt]) -> list[list[float]]:
    """[[ms, units sold so far], ...]: one step per accepted order, at its write."""
    times = sorted(
        (a.wrote if a.wrote is not None else a.end or 0.0) for a in attempts if a.code in SOLD_CODES
    )
    return [[t, n] for n, t in enumerate(times, start=1)]


def batches(attempts: Sequence[Attempt], found: Sequence[Section]) -> list[dict]:
    """Group commit: each batch, the buyer whose lock hold decided it (same fence as the
    batch's orders) and the buyers whose orders it wrote, in the order they were decided.
    ``size`` counts every request it decided, sold out ones too (they have no order)."""
    holders = {attempts[s.index].fence: attempts[s.index].buyer for s in found}
    grouped: dict[str, list[Attempt]] = {}
    for a in attempts:
        if a.batch_id is not None:
            grouped.setdefault(a.batch_id, []).append(a)
    listed = []
    for batch_id, members in grouped.items():
        members.sort(key=lambda a: a.batch_position or 0)
        first = members[0]
        listed.append(
            {
                "batch_id": batch_id,
                "size": first.batch_size,
                "fence": first.order_fence,
                "decided_by": holders.get(first.order_fence),
                "decided_at": min(a.end or 0.0 for a in members),
                "buyers": [a.buyer for a in members],
            }
        )
    return sorted(listed, key=lambda b: b["decided_at"])


def summarize(attempts: Sequence[Attempt], *, stock: int, buyers: int, elapsed_ms: float) -> dict:
    """Everything the page draws, JSON-able."""
    found = sections(attempts)
    marked = overlapping(found)
    grouped = batches(attempts, found)
    riders = {b["fence"]: b["buyers"] for b in grouped}
    waits = [a.lock_wait_ms for a in attempts if a.lock_wait_ms is not None]
    sold = sum(1 for a in attempts if a.code in SOLD_CODES)
    answered = {a.buyer for a in attempts if a.code is not None and a.code not in ("busy",)}
    timeline = [
        {
            "buyer": s.buyer,
            "attempt": attempts[s.index].attempt,
            "start": s.start,
            "end": s.end,
            "wrote": s.wrote,
            "refused": s.refused,
            "overlap": s.index in marked,
            "stalled": attempts[s.index].stalled,
            "fence": attempts[s.index].fence,
            "stock_read": attempts[s.index].stock_read,
            "batch": riders.get(attempts[s.index].fence, [])[:50],
        }
        for s in found[:TIMELINE_LIMIT]
    ]
    return {
        "elapsed_ms": round(elapsed_ms, 1),
        "stock": stock,
        "buyers": buyers,
        "buyers_started": len({a.buyer for a in attempts}),
        "buyers_answered": len(answered),
        "attempts": len(attempts),
        "sold": sold,
        "oversold": max(0, sold - stock),
        "sold_over_time": sold_over_time(attempts),
        "answers": dict(sorted(Counter(str(a.status) for a in attempts if a.status).items())),
        "codes": dict(sorted(Counter(a.code for a in attempts if a.code).items())),
        "lock_wait_ms": {
            "count": len(waits),
            "p50": percentile(waits, 50),
            "p90": percentile(waits, 90),
            "p99": percentile(waits, 99),
            "max": round(max(waits), 1) if waits else None,
        },
        "fence_refusals": sum(1 for a in attempts if a.refused),
        "sections": len(found),
        "overlapping_sections": len(marked),
        "most_at_once": most_at_once(found),
        "stale_readers": len(stale_readers(attempts)),
        "timeline": timeline,
        "timeline_truncated": len(found) > TIMELINE_LIMIT,
        "batches": grouped[:TIMELINE_LIMIT],
        "mean_batch_size": (
            round(sum(b["size"] or 0 for b in grouped) / len(grouped), 1) if grouped else None
        ),
    }
