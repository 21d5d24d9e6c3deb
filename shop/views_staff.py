"""The staff dashboard: each sale's stock in the database beside Redis', orders by status, the
audit's verdict, and a reset button for demo sales."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from seckill import lifecycle
from seckill.errors import NotFound, SeckillError
from shop import pages
from shop.views_common import seckill_errors, staff_required


@never_cache
@staff_required
@require_safe
@seckill_errors
def dashboard(request: HttpRequest) -> HttpResponse:
    audit = pages.run_audit()
    return render(
        request, "shop/staff_dashboard.html", {"rows": pages.dashboard(audit), "audit": audit}
    )


@staff_required
@require_POST
@seckill_errors
def reset_sale(request: HttpRequest, sale_id: int) -> HttpResponse:
    """Restock a demo sale (its orders are deleted) via seckill.lifecycle.reset_sale."""
    try:
        sale = lifecycle.reset_sale(sale_id)
    except NotFound:
        raise
    except SeckillError as exc:
        error = pages.describe_error(exc)
        messages.error(request, f"Sale {sale_id} was not reset. {error.title}: {error.message}")
    else:
        messages.success(request, f"Sale {sale.pk} reset: {sale.stock_left} in stock, no orders.")
    return redirect("staff-dashboard")
