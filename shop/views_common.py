"""What every page view shares: the engine's refusals turned into pages, and the staff gate."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from seckill.errors import NotFound, SeckillError
from seckill.placement import backing_services
from shop import pages

View = Callable[..., HttpResponse]


def render_error(request: HttpRequest, error: pages.PageError) -> HttpResponse:
    """A whole page for a refusal that has no better place to be shown."""
    response = render(request, "shop/error.html", {"error": error}, status=error.status)
    if error.retry_after:
        response["Retry-After"] = str(error.retry_after)
    return response


def seckill_errors(view: View) -> View:
    """Let views call services directly: a missing object is a 404 page, an outage of Redis or
    the database a 503 page, any other refusal its own status with the friendly copy."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            with backing_services():
                return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except SeckillError as exc:
            return render_error(request, pages.describe_error(exc))

    return wrapped


def staff_required(view: View) -> View:
    """Anonymous visitors go to the login page; signed-in non-staff get 403, not a login loop."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("staff only")
        return view(request, *args, **kwargs)

    return wrapped
