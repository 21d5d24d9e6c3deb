"""The sales list (the home page) and the health endpoint."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from shop import pages
from shop.health import health_report, without_details


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """Every sale with its live status and stock; a small script keeps the figures fresh."""
    cards = pages.sale_cards(pages.listed_sales())
    context = {
        "cards": cards,
        "status_copy": pages.status_copy(),
        "server_now_ms": pages.server_now_ms(),
    }
    return render(request, "shop/home.html", context)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database, Redis, a Celery worker and this process's worker-id lease are all
    fine; 503 naming what is down. Details (hosts, workers, errors) for staff only."""
    healthy, report = health_report()
    if not request.user.is_staff:
        report = without_details(report)
    return JsonResponse(report, status=200 if healthy else 503)
