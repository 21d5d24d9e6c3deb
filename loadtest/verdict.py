"""The one line a load run ends with: PASS or FAIL, and why.

A safe strategy passes when the independent audit is clean (nothing oversold, lost or
duplicated, no limit broken, stock conserved, queue drained, no sale key without a TTL). The
teaching strategies (unsafe, naive_lock) are wrong on purpose: what they did is reported, but
they never decide the verdict.
"""

from __future__ import annotations

from typing import Any

from loadtest.report import SAFE


def problems(audit: dict[str, Any]) -> list[str]:
    """What is wrong with one phase's audit, in words; empty when clean."""
    found = [
        f"{label} {audit[key]}"
        for key, label in (
            ("oversold", "oversold"),
            ("lost_orders", "lost"),
            ("duplicates", "duplicates"),
            ("limit_violations", "over the limit"),
            ("queued_left", "still queued"),
        )
        if audit.get(key)
    ]
    if not audit.get("conserved", True):
        found.append("stock not conserved")
    if not audit.get("settled", True):
        found.append("never settled")
    if audit.get("keys_without_ttl"):
        found.append(f"{len(audit['keys_without_ttl'])} keys without TTL")
    return found


def verdict_line(phases: list[dict[str, Any]]) -> tuple[bool, str]:
    """(passed, the line): over every phase of a run or a comparison."""
    failed, clean, teaching = [], [], []
    for phase in phases:
        name = f"{phase['strategy']} {phase['scenario']}"
        wrong = problems(phase["audit"])
        if phase["strategy"] not in SAFE:
            teaching.append(f"{name}: {', '.join(wrong) or 'clean this time'}")
        elif wrong:
            failed.append(f"{name}: {', '.join(wrong)}")
        else:
            audit = phase["audit"]
            clean.append(f"{name} sold {audit.get('units_sold')}/{audit.get('stock_total')}")
    if teaching:
        teaching_note = f"; teaching strategies (wrong on purpose): {'; '.join(teaching)}"
    else:
        teaching_note = ""
    if failed:
        return False, f"FAIL: {'; '.join(failed)}{teaching_note}"
    if not clean:
        return True, f"PASS: no safe strategy was run{teaching_note}"
    return True, f"PASS: audit clean ({'; '.join(clean)}){teaching_note}"
