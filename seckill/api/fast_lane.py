"""The order endpoint's fast lane: a token-authenticated order goes straight to its DRF view.

Why: what a flash crowd sends is ``POST /api/v1/sales/<id>/orders/`` with
``Authorization: Token …``, and most of it is turned away by the admission gate in one Redis
round trip. Profiled, a fifth of such an answer went to middleware that request never uses
(sessions, CSRF, the session user, messages, static files) and a tenth to URL resolution. A
token-authenticated JSON API needs none of them: DRF decides who is asking from the header
(token authentication either authenticates or refuses; session authentication, the only user
of the session and its CSRF check, is never reached) and its views are CSRF-exempt anyway.

So, like WhiteNoise answering a static file before the rest of the chain, this middleware
answers such a request itself: it checks the host as ``CommonMiddleware`` would
(``ALLOWED_HOSTS``), calls :class:`seckill.api.views.PlaceOrderView` with the sale id from the
path, renders the response and sets its ``Content-Length``. The middleware above it (security
headers, ``X-Frame-Options``, the content security policy) still applies to its answers. Any
other request, or an order without a token header, takes the full chain.

The path is the URLconf's own (``reverse`` of the ``api:place-order`` route), so the two cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

from django.http import HttpRequest, HttpResponseBase
from django.urls import get_script_prefix, reverse

from seckill.api.views import PlaceOrderView, token_key_of

_SENTINEL_ID = 4_294_967_291  # any id: only what surrounds it in the reversed path is kept


class OrderFastLane:
    """Token-authenticated ``POST`` to the order endpoint: straight to the view (see module)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.view = PlaceOrderView.as_view()

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        sale_id = self.sale_id(request) if request.method == "POST" else None
        if sale_id is None or token_key_of(request) is None:
            return self.get_response(request)
        request.get_host()  # DisallowedHost (a 400) for a host not in ALLOWED_HOSTS
        response = self.view(request, pk=sale_id)
        response = response.render()  # what Django's handler does for a template response
        if not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response

    @cached_property
    def route(self) -> tuple[str, str]:
        """The order path before the sale id and after it, from the URLconf; read on the first
        request, so building the middleware chain does not import the URLconf."""
        path = reverse("api:place-order", kwargs={"pk": _SENTINEL_ID})
        path = "/" + path[len(get_script_prefix()) :]  # as request.path_info spells it
        before, _, after = path.partition(str(_SENTINEL_ID))
        return before, after

    def sale_id(self, request: HttpRequest) -> int | None:
        """The sale id of an order path; None for any other path. ``<int:pk>``'s rule: ASCII
        digits only."""
        before, after = self.route
        path = request.path_info
        if not (path.startswith(before) and path.endswith(after)):
            return None
        digits = path[len(before) : len(path) - len(after)]
        return int(digits) if digits.isascii() and digits.isdigit() else None
