"""What a scenario reports: its observations, its checks and the audit's verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadtest.faults.rig import Rig


@dataclass
class Result:
    name: str
    fault: str
    observed: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    audit_ok: bool | None = None
    audit: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    note: str | None = None  # a documented limitation the scenario demonstrates

    @property
    def ok(self) -> bool:
        return self.skipped is not None or (
            all(self.checks.values()) and self.audit_ok is not False
        )

    def check(self, name: str, passed: bool) -> None:
        self.checks[name] = bool(passed)

    def audited(self, rig: Rig, sale_id: int) -> None:
        report = rig.audit(sale_id)
        self.audit_ok = report.get("exit_code") == 0 and report.get("ok") is True
        sale = (report.get("sales") or [{}])[0]
        self.audit = {
            "exit_code": report.get("exit_code"),
            "units_sold": sale.get("units_sold"),
            "stock_total": sale.get("stock_total"),
            "oversold": sale.get("oversold"),
            "violations": [v.get("code") for v in sale.get("violations", [])]
            + [v.get("code") for v in report.get("violations", [])],
            "warnings": [v.get("code") for v in sale.get("warnings", [])],
        }

    def summary(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        failed = [name for name, ok in self.checks.items() if not ok]
        parts = [f"{k}={v}" for k, v in self.observed.items()]
        parts.append(f"audit={'clean' if self.audit_ok else self.audit.get('violations')}")
        if failed:
            parts.append(f"FAILED={failed}")
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)


def table(results: list[Result]) -> str:
    """A Markdown table of the results."""
    rows = ["| scenario | fault | result | observed |", "| --- | --- | --- | --- |"]
    for r in results:
        verdict = "skipped" if r.skipped else ("PASS" if r.ok else "FAIL")
        rows.append(f"| {r.name} | {r.fault} | {verdict} | {r.summary()} |")
    return "\n".join(rows)
