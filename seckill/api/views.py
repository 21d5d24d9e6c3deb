"""REST API v1 views: parse the request, call a service, render the result. Nothing else."""

from __future__ import annotations

import json

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.authentication import get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from seckill import accounts, lifecycle, purchase_token, rate_limit
from seckill.api.openapi import ERROR
from seckill.api.serializers import (
    CredentialsSerializer,
    OrderSerializer,
    PlaceOrderSerializer,
    PurchaseTokenSerializer,
    RegisterSerializer,
    SaleResetSerializer,
    SaleSerializer,
    TokenSerializer,
    figures_context,
    order_body,
)
from seckill.api.throttles import AuthThrottle, OrderPlacementThrottles, PurchaseTokenThrottles
from seckill.errors import NotFound, SoldOut
from seckill.ids import MAX_ORDER_ID
from seckill.models import Sale
from seckill.placement import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_KEY_MAX_LENGTH,
    AdmittedOrder,
    admit_order,
    place_admitted,
    place_order,
)
from seckill.selectors.orders import orders_of, owned_order
from seckill.selectors.sales import get_sale, listed_sales

IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH,
    "pattern": IDEMPOTENCY_KEY.pattern,
}


class IsStaffOrReadOnly(permissions.BasePermission):
    allows_anonymous_reads = True  # the schema says so (seckill.api.openapi)

    def has_permission(self, request: Request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_staff)


def order_id_or_404(raw: str) -> int:
    """The order id in a URL (ids travel as strings); anything that is not one of ours is
    simply not found. Not ``seckill.ids.parse_order_id``, which splits an id into its parts.

    ASCII digits only: ``str.isdigit`` also accepts "²" or "①", which ``int`` then refuses."""
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= MAX_ORDER_ID:
        raise NotFound(f"no order {raw[:40]}")
    return int(raw)


class RegisterView(APIView):
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [AuthThrottle]

    @extend_schema(request=CredentialsSerializer, responses={201: TokenSerializer, 400: ERROR})
    def post(self, request: Request) -> Response:
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token = accounts.register(data.validated_data["username"], data.validated_data["password"])
        return Response({"token": token}, status=status.HTTP_201_CREATED)


class TokenView(APIView):
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [AuthThrottle]

    @extend_schema(request=CredentialsSerializer, responses={200: TokenSerializer, 401: ERROR})
    def post(self, request: Request) -> Response:
        data = CredentialsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token = accounts.token_for(data.validated_data["username"], data.validated_data["password"])
        return Response({"token": token})


class SaleListCreateView(generics.ListCreateAPIView):
    serializer_class = SaleSerializer
    permission_classes = [IsStaffOrReadOnly]

    def get_queryset(self):
        return listed_sales()

    def list(self, request: Request, *args, **kwargs) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        context = {**self.get_serializer_context(), **figures_context(page)}
        return self.get_paginated_response(SaleSerializer(page, many=True, context=context).data)


class SaleDetailView(generics.RetrieveAPIView):
    queryset = Sale.objects.select_related("product")
    serializer_class = SaleSerializer

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        sale = self.get_object()
        context = {**self.get_serializer_context(), **figures_context([sale])}
        return Response(SaleSerializer(sale, context=context).data)


class SaleResetView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(request=SaleResetSerializer, responses={200: SaleSerializer, 404: ERROR})
    def post(self, request: Request, pk: int) -> Response:
        data = SaleResetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sale = lifecycle.reset_sale(pk, data.validated_data.get("stock_total"))
        return Response(SaleSerializer(sale, context=figures_context([sale])).data)


class PlaceOrderView(APIView):
    """The hot path: the admission gate (:func:`seckill.placement.admit_order`) answers who is
    buying and whether the throttles allow in one Redis round trip, often the order too; DRF's
    own authentication and throttles (the general path) run only for a request it leaves.
    JSON only: no content negotiation, and no serializer built per request. A request with a
    token header reaches it through :mod:`seckill.api.fast_lane`, below most middleware."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [OrderPlacementThrottles]
    admitted: AdmittedOrder | None = None

    def initial(self, request: Request, *args, **kwargs) -> None:
        self.admitted = gate(request, kwargs["pk"])
        if self.admitted is None:
            return super().initial(request, *args, **kwargs)
        self.format_kwarg = None
        request.accepted_renderer, request.accepted_media_type = JSON, JSON.media_type
        request.version, request.versioning_scheme = None, None
        request.user, request.auth = self.admitted.admission.user, self.admitted.admission.token
        self.check_permissions(request)
        if self.admitted.admission.wait:
            self.throttled(request, self.admitted.admission.wait)
        return None

    def handle_exception(self, exc: Exception) -> Response:
        """A sold-out answer is what most of a flash crowd gets: not a warning worth a log line
        each (Django's request logger writes one per 4xx unless the response says it was
        logged), which cost a fifth of that answer's time in a profile."""
        response = super().handle_exception(exc)
        if isinstance(exc, SoldOut):
            response._has_been_logged = True
        return response

    @extend_schema(
        request=PlaceOrderSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                IDEMPOTENCY_KEY_SCHEMA,
                OpenApiParameter.HEADER,
                description="Replaying a key returns the first order instead of placing another. "
                "Keys are scoped to the sale: the same key on another sale is a new request. "
                "A replay asking for another quantity is refused (422 idempotency_mismatch).",
            ),
            OpenApiParameter(
                "Purchase-Token",
                str,
                OpenApiParameter.HEADER,
                description="Required by sales with require_purchase_token: from "
                "POST /api/v1/sales/{id}/purchase-token/, single use.",
            ),
        ],
        responses={
            201: OrderSerializer,
            202: OrderSerializer,
            200: OrderSerializer,
            400: ERROR,
            401: ERROR,
            403: ERROR,
            404: ERROR,
            409: ERROR,
            422: ERROR,
            429: ERROR,
            503: ERROR,
        },
        description="201: placed. 202: accepted (redis_atomic), written to the database shortly. "
        "200: an earlier order returned for a replayed Idempotency-Key. "
        "422 idempotency_mismatch: the key was first used with another quantity.",
    )
    def post(self, request: Request, pk: int) -> Response:
        if self.admitted is not None:
            placement = place_admitted(self.admitted)
        else:
            data = PlaceOrderSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            placement = place_order(
                pk,
                request.user,
                data.validated_data["quantity"],
                request.headers.get("Idempotency-Key"),
                request.headers.get("Purchase-Token"),
            )
        body = order_body(placement.order)
        if not placement.created:
            return Response(
                body, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"}
            )
        code = status.HTTP_202_ACCEPTED if placement.queued else status.HTTP_201_CREATED
        return Response(body, status=code)


JSON = JSONRenderer()


def token_key_of(request: HttpRequest | Request) -> str | None:
    """The key of ``Authorization: Token <key>``, split as DRF's token authentication splits
    it; None for any other header (or none), which DRF's own path then answers."""
    auth = get_authorization_header(request).split()
    if len(auth) != 2 or auth[0].lower() != b"token":
        return None
    try:
        return auth[1].decode()
    except UnicodeError:
        return None


def gate(request: Request, sale_id: int) -> AdmittedOrder | None:
    """The admission gate for a JSON order with ``Authorization: Token <key>``; None for any
    other request (DRF's path then answers it, errors in their usual order)."""
    token_key = token_key_of(request)
    media_type = request.content_type.partition(";")[0].strip().lower()
    if token_key is None or media_type != "application/json":
        return None
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError, RequestDataTooBig):
        return None
    if not isinstance(body, dict) or "quantity" not in body:
        return None
    return admit_order(
        token_model=Token,
        token_key=token_key,
        address=rate_limit.client_address(request),
        sale_id=sale_id,
        quantity=body["quantity"],
        # META, not request.headers, which builds a mapping of every header (py-spy: 3% of a
        # sold-out answer's web samples)
        idempotency_key=request.META.get("HTTP_IDEMPOTENCY_KEY"),
        purchase_token=request.META.get("HTTP_PURCHASE_TOKEN"),
    )


class PurchaseTokenView(APIView):
    """The hidden purchase path's first step: a single-use token, issued only while live."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [PurchaseTokenThrottles]

    @extend_schema(request=None, responses={201: PurchaseTokenSerializer, 404: ERROR, 409: ERROR})
    def post(self, request: Request, pk: int) -> Response:
        token, ttl = purchase_token.issue(get_sale(sale_id=pk), request.user.pk)
        return Response({"token": token, "expires_in": ttl}, status=status.HTTP_201_CREATED)


class OrderListView(generics.ListAPIView):
    serializer_class = OrderSerializer
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        return orders_of(buyer=self.request.user)


class OrderDetailView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: OrderSerializer, 404: ERROR})
    def get(self, request: Request, order_id: str) -> Response:
        order = owned_order(order_id=order_id_or_404(order_id), buyer=request.user)
        return Response(OrderSerializer(order).data)


class PayOrderView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={200: OrderSerializer, 404: ERROR, 409: ERROR})
    def post(self, request: Request, order_id: str) -> Response:
        order = lifecycle.pay_order(order_id_or_404(order_id), request.user)
        return Response(OrderSerializer(order).data)


class CancelOrderView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses={200: OrderSerializer, 404: ERROR, 409: ERROR})
    def post(self, request: Request, order_id: str) -> Response:
        order = lifecycle.cancel_order(order_id_or_404(order_id), request.user)
        return Response(OrderSerializer(order).data)
