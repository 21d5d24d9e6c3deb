"""The API's exception handler: one error shape, ``{"error": {"code": "...", "message": "..."}}``.

Domain refusals (``seckill.errors``) carry their own code and status; DRF's own exceptions get
stable codes here; Redis or database outages become 503 ``unavailable`` instead of a traceback.
"""

from __future__ import annotations

import math

from django.db import DatabaseError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from seckill.errors import SeckillError, error_body
from seckill.infrastructure.redis_client import REDIS_OUTAGES
from seckill.lock import LockUnavailableError

DRF_CODES: list[tuple[type[Exception], str]] = [
    (exceptions.ParseError, "invalid"),
    (exceptions.ValidationError, "invalid"),
    (exceptions.NotAuthenticated, "unauthenticated"),
    (exceptions.AuthenticationFailed, "unauthenticated"),
    (exceptions.PermissionDenied, "forbidden"),
    (exceptions.NotFound, "not_found"),
    (Http404, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
]
OUTAGES = (*REDIS_OUTAGES, LockUnavailableError, DatabaseError)


def _message(detail) -> str:
    """Flatten DRF's nested error details into one readable sentence."""
    if isinstance(detail, dict):
        parts = [f"{field}: {_message(value)}" for field, value in detail.items()]
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_message(item) for item in detail)
    return str(detail)


def _retry_after_header(seconds: float | None) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))} if seconds else {}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, SeckillError):
        return Response(
            error_body(exc.code, exc.message),
            status=exc.status,
            headers=_retry_after_header(exc.retry_after),
        )
    if isinstance(exc, OUTAGES):
        return Response(
            error_body("unavailable", "a backing service is unavailable; retry later"),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for kind, c in DRF_CODES if isinstance(exc, kind)), "error")
    detail = getattr(exc, "detail", str(exc))
    extra = {"fields": detail} if isinstance(exc, exceptions.ValidationError) else {}
    response.data = error_body(code, _message(detail), **extra)
    return response
