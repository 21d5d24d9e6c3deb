"""Admin for sales and orders.

Stock figures and orders are read-only here on purpose: an edit that bypassed the engine would
break conservation (stock_left + live units == stock_total) and leave the Redis mirror wrong.
Restocking goes through :func:`seckill.lifecycle.reset_sale`, which keeps both in step.
"""

from __future__ import annotations

from contextvars import ContextVar

import redis
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from seckill import stock
from seckill.errors import SeckillError
from seckill.lifecycle import reset_sale
from seckill.models import Order, Sale

MISSING = "—"


UNAVAILABLE = "unavailable"
# Set per changelist request: with Redis down, one failed ping instead of a timeout per row.
_redis_up: ContextVar[bool] = ContextVar("seckill_admin_redis_up", default=True)


def redis_stock_of(sale_id: int) -> int | str:
    """The mirror's stock for display: "—" when there is no mirror, "unavailable" without Redis."""
    if not _redis_up.get():
        return UNAVAILABLE
    try:
        value = stock.read_mirror(sale_id)["stock"]
    except redis.RedisError:
        _redis_up.set(False)
        return UNAVAILABLE
    return MISSING if value is None else value


@admin.register(Sale)
class SaleAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "product",
        "strategy",
        "sale_status",
        "stock_total",
        "stock_left",
        "redis_stock",
        "per_user_limit",
        "starts_at",
    )
    list_select_related = ("product",)
    list_filter = ("strategy",)
    list_per_page = 50  # one Redis round trip per row for the mirror column
    search_fields = ("product__name",)
    actions = ("restock",)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        token = _redis_up.set(True)
        try:
            response = super().changelist_view(request, extra_context)
            if hasattr(response, "render"):
                response.render()  # now, while the flag is in scope
            return response
        finally:
            _redis_up.reset(token)

    def get_readonly_fields(self, request: HttpRequest, obj: Sale | None = None) -> tuple:
        # stock_total is set when the sale is created and changed only by a reset.
        base = ("stock_left", "last_fence", "created_at")
        return base if obj is None else (*base, "stock_total")

    def save_model(self, request: HttpRequest, obj: Sale, form, change: bool) -> None:
        if not change:
            obj.stock_left = obj.stock_total
        super().save_model(request, obj, form, change)

    @admin.display(description="status")
    def sale_status(self, obj: Sale) -> str:
        return obj.status

    @admin.display(description="Redis stock")
    def redis_stock(self, obj: Sale) -> int | str:
        return redis_stock_of(obj.pk)

    @admin.action(description="Reset (restock) selected sales", permissions=["change"])
    def restock(self, request: HttpRequest, queryset: QuerySet[Sale]) -> None:
        done = 0
        for sale_id in queryset.values_list("pk", flat=True):
            try:
                reset_sale(sale_id)
            except (SeckillError, redis.RedisError) as exc:
                self.message_user(request, f"sale {sale_id}: not reset ({exc})", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} sale(s) restocked.", messages.SUCCESS)


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "sale",
        "buyer",
        "quantity",
        "status",
        "strategy",
        "fence",
        "created_at",
    )
    list_filter = ("status", "strategy")
    list_select_related = ("sale__product", "buyer")
    search_fields = ("buyer__username",)
    search_help_text = "Order id (exact) or buyer username"

    def get_readonly_fields(self, request: HttpRequest, obj: Order | None = None) -> list[str]:
        return [field.name for field in Order._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders come from placement, which deducts the stock

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False  # deleting a live order would lose its units; cancel it instead

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        """Also match the order id exactly when the term is a number (ids are 64-bit)."""
        term = search_term.strip()
        if term.isascii() and term.isdigit() and int(term) < 2**63:  # not "²": int() refuses it
            return queryset.filter(Q(pk=int(term)) | Q(buyer__username=term)), False
        return super().get_search_results(request, queryset, search_term)
