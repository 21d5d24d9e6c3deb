"""The lab API's representations: a run's parameters (bounded as ``seckill.lab.params`` says)
and a run with its figures."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from seckill.lab import engine
from seckill.lab.models import LabRun
from seckill.lab.params import BOUNDS
from seckill.models import Strategy

HELP = {
    "stock": "units on the lab sale",
    "buyers": "buyers in the crowd, one unit each (12 inside the service at once)",
    "delay_ms": "pause inside every critical section, between reading the stock and writing it",
    "lease_ms": "the item lock's lease (naive_lock, lock, lock_fenced)",
    "stall_ms": "buyer 1 freezes this long inside its critical section, its lease not renewed",
    "time_limit_s": "the run's deadline",
}


def bounded(name: str) -> serializers.IntegerField:
    low, high, default = BOUNDS[name]
    return serializers.IntegerField(
        min_value=low, max_value=high, default=default, help_text=HELP[name]
    )


class RunParametersSerializer(serializers.Serializer):
    strategy = serializers.ChoiceField(choices=Strategy.choices)
    stock = bounded("stock")
    buyers = bounded("buyers")
    delay_ms = bounded("delay_ms")
    lease_ms = bounded("lease_ms")
    stall_ms = bounded("stall_ms")
    time_limit_s = bounded("time_limit_s")


class RunListSerializer(serializers.ModelSerializer):
    """A run in the list: parameters and headline figures (no timeline)."""

    params = RunParametersSerializer(read_only=True)
    headline = serializers.SerializerMethodField()

    class Meta:
        model = LabRun
        fields = ["id", "strategy", "params", "status", "started_at", "finished_at"]
        fields += ["audit_ok", "headline"]

    @extend_schema_field(
        {
            "type": "object",
            "description": "sold, stock, oversold, overlapping_sections, fence_refusals, "
            "elapsed_ms, ended_by",
        }
    )
    def get_headline(self, run: LabRun) -> dict:
        shown = engine.figures(run)
        names = ("sold", "stock", "oversold", "overlapping_sections", "fence_refusals")
        return {name: shown.get(name) for name in (*names, "elapsed_ms", "ended_by")}


class RunSerializer(RunListSerializer):
    """A run with everything the page draws, updated about four times a second while it runs."""

    figures = serializers.SerializerMethodField()
    narrative = serializers.SerializerMethodField()

    class Meta(RunListSerializer.Meta):
        fields = [*RunListSerializer.Meta.fields, "figures", "narrative", "audit"]

    @extend_schema_field(
        {
            "type": "object",
            "description": "answers (by HTTP status), codes, sold, oversold, sold_over_time "
            "[[ms, units]], lock_wait_ms {count, p50, p90, p99, max}, fence_refusals, "
            "sections, overlapping_sections, most_at_once, stale_readers, timeline [{buyer, "
            "attempt, start, end, wrote, refused, overlap, stalled, fence, stock_read}]",
        }
    )
    def get_figures(self, run: LabRun) -> dict:
        return {k: v for k, v in engine.figures(run).items() if k != "narrative"}

    def get_narrative(self, run: LabRun) -> str:
        """What happened and why, in plain words (empty until the run has ended)."""
        return run.summary.get("narrative", "")
