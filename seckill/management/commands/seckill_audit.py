"""``manage.py seckill_audit [--sale ID]``: the invariants report as JSON; exit 1 on a violation,
so a script or CI step can gate on it."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from seckill.audit import audit


class Command(BaseCommand):
    help = "Check the flash-sale invariants (design.md 1-5) in the database and Redis."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--sale", type=int, default=None, help="audit only this sale id")
        parser.add_argument(
            "--no-redis", action="store_true", help="database checks only (Redis unreachable)"
        )
        parser.add_argument(
            "--settle",
            type=float,
            default=0.2,
            help="seconds before re-checking a Redis/database mismatch (in-flight writes)",
        )

    def handle(self, *args, sale: int | None, no_redis: bool, settle: float, **options) -> None:
        report = audit(sale, use_redis=not no_redis, settle=settle)
        self.stdout.write(json.dumps(report, indent=2))
        if not report["ok"]:
            raise CommandError("invariant violations found (see the JSON above)", returncode=1)
