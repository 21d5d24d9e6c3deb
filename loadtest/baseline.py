"""The ceiling's yardstick: a trivial JSON view behind the same middleware and gunicorn.

Order placement is compared with this view's request rate, measured by the same load generator
in the same run, so the ratio says what the order path costs on top of Django itself.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def ping(request: HttpRequest) -> JsonResponse:
    """No database, no Redis: only the framework's own per-request work."""
    return JsonResponse({"ok": True})
