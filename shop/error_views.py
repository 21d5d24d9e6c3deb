"""Django's own error answers (400, 403, 404, 500 and CSRF failures) in the site's two voices.

Under ``/api/`` every error is the API's JSON body, so a client never has to parse HTML, even
for an unknown path or a crash; anywhere else it is a page from the site's base template, with
the navigation, instead of Django's bare default.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

from seckill.errors import error_body

API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def _page(request: HttpRequest | None, status: int, title: str, message: str) -> HttpResponse:
    html = loader.render_to_string(
        "shop/http_error.html",
        {"status": status, "title": title, "message": message},
        request=request,
    )
    return HttpResponse(html, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, (RequestDataTooBig, TooManyFieldsSent)):
        code, message = "too_large", "the request body is too large"
    else:
        code, message = "invalid", "the request could not be understood"
    if _is_api(request):
        return JsonResponse(error_body(code, message), status=400)
    return _page(request, 400, "Bad request", message)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("forbidden", "you may not do this"), status=403)
    return _page(
        request, 403, "Not for you", "This page is for staff only, or belongs to someone else"
    )


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        message = f"no such endpoint or object: {request.path}"
        return JsonResponse(error_body("not_found", message), status=404)
    return _page(
        request, 404, "Not found", "There is no such page, sale or order (or it is not yours)"
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form posted without its CSRF token, typically from a page left open past a log-in."""
    if _is_api(request):
        return JsonResponse(error_body("forbidden", f"CSRF check failed: {reason}"), status=403)
    return _page(
        request,
        403,
        "Form expired",
        "This form was out of date (you may have logged in or out since): reload and try again",
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """Rendered without context processors: whatever failed (the database, say) may fail again."""
    if _is_api(request):
        message = "an unexpected error occurred; it has been logged"
        return JsonResponse(error_body("server_error", message), status=500)
    return _page(
        None, 500, "Something went wrong", "An unexpected error occurred; it has been logged"
    )
