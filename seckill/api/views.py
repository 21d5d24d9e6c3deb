"""REST API v1 views: parse the request, call a service, render the result. Nothing else."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from seckill import accounts, lifecycle, purchase_token
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
)
from seckill.api.throttles import AuthThrottle, OrderPlacementThrottles, PurchaseTokenThrottles
from seckill.errors import NotFound
from seckill.ids import MAX_ORDER_ID
from seckill.models import Sale
from seckill.placement import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_MAX_LENGTH, place_order
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
    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [OrderPlacementThrottles]

    @extend_schema(
        request=PlaceOrderSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                IDEMPOTENCY_KEY_SCHEMA,
                OpenApiParameter.HEADER,
                description="Replaying a key returns the first order instead of placing another. "
                "Keys are scoped to the sale: the same key on another sale is a new request.",
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
            429: ERROR,
            503: ERROR,
        },
        description="201: placed. 202: accepted (redis_atomic), written to the database shortly. "
        "200: an earlier order returned for a replayed Idempotency-Key.",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = PlaceOrderSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        placement = place_order(
            pk,
            request.user,
            data.validated_data["quantity"],
            request.headers.get("Idempotency-Key"),
            request.headers.get("Purchase-Token"),
        )
        body = OrderSerializer(placement.order).data
        if not placement.created:
            return Response(
                body, status=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"}
            )
        code = status.HTTP_202_ACCEPTED if placement.queued else status.HTTP_201_CREATED
        return Response(body, status=code)


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
