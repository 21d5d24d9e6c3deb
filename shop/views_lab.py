"""The lab page: run a crowd against any strategy and watch it oversell, or hold, live.

The page is a shell: its script (static/shop/lab.js) drives the staff API under
/api/v1/lab/runs/, which starts, reports and stops runs (seckill.lab).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from seckill.lab.engine import RETRY_PAUSE, THREADS
from seckill.lab.params import BOUNDS
from seckill.models import Strategy
from shop.views_common import staff_required

FIELDS = [
    ("stock", "Stock", "units on the lab sale"),
    ("buyers", "Buyers", f"one unit each; {THREADS} inside the service at once"),
    ("delay_ms", "Delay (ms)", "pause between reading the stock and writing it"),
    ("lease_ms", "Lease (ms)", "the lock's lease: naive_lock, lock, lock_fenced"),
    ("stall_ms", "Stall buyer 1 (ms)", "freezes inside its critical section, lease not renewed"),
    ("time_limit_s", "Time limit (s)", "the run's deadline"),
]


@never_cache
@ensure_csrf_cookie
@staff_required
@require_GET
def lab(request: HttpRequest) -> HttpResponse:
    fields = [
        {"name": name, "label": label, "help": help, "min": low, "max": high, "value": default}
        for (name, label, help), (low, high, default) in (
            (field, BOUNDS[field[0]]) for field in FIELDS
        )
    ]
    return render(
        request,
        "shop/lab.html",
        {
            "strategies": Strategy.choices,
            "fields": fields,
            "retry_pause_ms": int(RETRY_PAUSE * 1000),
        },
    )
