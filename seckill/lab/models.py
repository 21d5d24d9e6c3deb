"""Finished (and running) lab runs: what was asked, what happened, what the audit said.

The lab sale and its orders are deleted when a run ends, so a teaching oversell never stays in
the shop's audit; everything the page shows of a run is kept here.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    RUNNING = "running"
    FINISHED = "finished"  # every buyer had its answer, or the deadline came
    STOPPED = "stopped"  # the Stop button
    FAILED = "failed"  # the engine itself broke (the error is in summary)
    ABANDONED = "abandoned"  # its process died mid-run; found and closed by the next run


class LabRun(models.Model):
    strategy = models.CharField(max_length=16)
    params = models.JSONField()
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.RUNNING)
    # The lab sale while it exists (deleted with its orders at the end of the run).
    sale_id = models.BigIntegerField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # analysis.summarize()'s figures and timeline, and narrative.explain()'s paragraph.
    summary = models.JSONField(default=dict, blank=True)
    audit = models.JSONField(default=dict, blank=True)
    audit_ok = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"lab run {self.pk} ({self.strategy})"
