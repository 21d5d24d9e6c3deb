"""Load-test servers only: ``?lock_batch=N`` runs one request with ``SECKILL_LOCK_BATCH=N``.

So one run on one server measures ``lock`` with group commit and with one order per lock hold
(``?lock_batch=1``) side by side (``python -m loadtest compare``'s ceiling). The override is a
probe's setting (``seckill.probes``), the way the lab runs its buyers with other settings.
"""

from __future__ import annotations

from typing import Any

from seckill import probes


class _Settings:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def point(self, name: str, **facts: Any) -> None:
        pass

    def overrides(self) -> dict[str, Any]:
        return self.values


class LockBatchOverride:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        raw = request.GET.get("lock_batch", "")
        if not raw.isdigit():
            return self.get_response(request)
        with probes.probing(_Settings({"SECKILL_LOCK_BATCH": int(raw)})):
            return self.get_response(request)
