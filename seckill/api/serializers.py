"""API representations. Order ids are strings: 64-bit integers lose precision in JavaScript."""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from seckill.ids import parse_order_id
from seckill.models import Order, Sale, Strategy
from seckill.selectors.sales import SaleFigures, figures_from, sale_figures
from shop.models import Product


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "name", "description", "price", "swatch"]


class SaleSerializer(serializers.ModelSerializer):
    product = ProductSerializer(read_only=True)
    product_id = serializers.PrimaryKeyRelatedField(
        queryset=Product.objects.all(), source="product", write_only=True
    )
    stock_left = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()
    strategy = serializers.ChoiceField(choices=Strategy.choices, default=Strategy.LOCK)
    stock_total = serializers.IntegerField(min_value=1, max_value=10_000_000)
    per_user_limit = serializers.IntegerField(min_value=1, max_value=1000, default=1)

    class Meta:
        model = Sale
        fields = [
            "id",
            "product",
            "product_id",
            "price",
            "starts_at",
            "ends_at",
            "stock_total",
            "stock_left",
            "per_user_limit",
            "strategy",
            "status",
            "require_purchase_token",
        ]

    def validate(self, attrs: dict) -> dict:
        if attrs["ends_at"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": "must be after starts_at"})
        return attrs

    def create(self, validated: dict) -> Sale:
        return Sale.objects.create(stock_left=validated["stock_total"], **validated)

    def _figures(self, sale: Sale) -> SaleFigures:
        """The live figures from the context (:func:`figures_context`), else the database's."""
        found = self.context.get("figures", {}).get(sale.pk)
        return found or figures_from(sale=sale, mirrored=None, now=timezone.now())

    def get_stock_left(self, sale: Sale) -> int:
        return self._figures(sale).stock_left

    def get_status(self, sale: Sale) -> str:
        return self._figures(sale).status


def figures_context(sales) -> dict:
    """Serializer context with the live figures of the sales about to be rendered (one Redis
    pipeline for all of them)."""
    return {"figures": sale_figures(sales=sales)}


class SaleResetSerializer(serializers.Serializer):
    stock_total = serializers.IntegerField(min_value=1, max_value=10_000_000, required=False)


class IdPartsSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    worker_id = serializers.IntegerField()
    sequence = serializers.IntegerField()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable, machine-readable: see the README's list")
    message = serializers.CharField(help_text="for people; wording may change")
    fields = serializers.DictField(
        required=False, help_text="400 invalid only: the offending fields and what is wrong"
    )


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the whole API (seckill.errors.error_body)."""

    error = ErrorDetailSerializer()


class OrderSerializer(serializers.ModelSerializer):
    order_id = serializers.CharField(source="id", read_only=True)
    sale_id = serializers.IntegerField(read_only=True)
    total = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
    persisted = serializers.SerializerMethodField()
    id_parts = serializers.SerializerMethodField()
    # null in a 202: a queued redis_atomic order has no database row (nor timestamp) yet
    created_at = serializers.DateTimeField(read_only=True, allow_null=True)
    batch_id = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="Group commit (lock, lock_fenced): the lock hold whose batch decided this"
        " order, as sale:fence; null for orders decided one at a time.",
    )

    class Meta:
        model = Order
        fields = [
            "order_id",
            "sale_id",
            "quantity",
            "unit_price",
            "total",
            "status",
            "strategy",
            "fence",
            "lock_wait_ms",
            "batch_id",
            "batch_position",
            "batch_size",
            "created_at",
            "pay_by",
            "paid_at",
            "persisted",
            "id_parts",
        ]
        read_only_fields = fields

    def get_persisted(self, order: Order) -> bool:
        """False while a redis_atomic order waits for Celery to write it to the database."""
        return not getattr(order, "queued", False)

    @extend_schema_field(IdPartsSerializer)
    def get_id_parts(self, order: Order) -> dict:
        parts = parse_order_id(order.id)
        return {
            "timestamp": parts.datetime,
            "worker_id": parts.worker_id,
            "sequence": parts.sequence,
        }

    def to_representation(self, order: Order) -> dict:
        """The declared fields' rendering, field by field but without building the fields: a
        ModelSerializer introspects the model for every instance (about 1 ms here), and order
        placement renders one order per request. tests/api/test_order_representation.py checks
        it matches DRF's generic rendering of the fields declared above."""
        return {
            "order_id": str(order.id),
            "sale_id": order.sale_id,
            "quantity": order.quantity,
            "unit_price": _MONEY.to_representation(order.unit_price),
            "total": _MONEY.to_representation(order.total),
            "status": order.status,
            "strategy": order.strategy,
            "fence": order.fence,
            "lock_wait_ms": order.lock_wait_ms,
            "batch_id": order.batch_id,
            "batch_position": order.batch_position,
            "batch_size": order.batch_size,
            "created_at": _optional_time(order.created_at),
            "pay_by": _optional_time(order.pay_by),
            "paid_at": _optional_time(order.paid_at),
            "persisted": self.get_persisted(order),
            "id_parts": self.get_id_parts(order),
        }


# DRF's own field formatting, built once for OrderSerializer.to_representation.
_MONEY = serializers.DecimalField(max_digits=12, decimal_places=2)
_TIME = serializers.DateTimeField()


def _optional_time(value):
    return None if value is None else _TIME.to_representation(value)


class StrictQuantityField(serializers.IntegerField):
    """A unit count as a JSON integer, or (form bodies) its plain ASCII digits: no ``"2 "``,
    ``"١"``, ``1.0`` or ``true`` read as a number the buyer may not have meant."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid")
        if isinstance(data, str) and not (data.isascii() and data.isdigit() and len(data) <= 10):
            self.fail("invalid")
        return super().to_internal_value(data)


@cache
def _order_representer() -> OrderSerializer:
    return OrderSerializer()


def order_body(order: Order) -> dict:
    """OrderSerializer's representation of ``order`` from one serializer built once per
    process: building one per request (its fields, their binding) was most of the cost of
    rendering an order answer on the hot path. The fields are stateless, so sharing is safe."""
    return _order_representer().to_representation(order)


class PlaceOrderSerializer(serializers.Serializer):
    """A purchase states its quantity: an empty or garbage body is a 400, never one unit."""

    quantity = StrictQuantityField(min_value=1, max_value=1000)


# A name of spaces is blank once trimmed: the schema says "at least one non-space character".
NOT_BLANK = RegexValidator(r"\S", "This field may not be blank.")


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, validators=[NOT_BLANK])
    password = serializers.CharField(
        min_length=1, max_length=128, write_only=True, trim_whitespace=False
    )

    def validate_username(self, value: str) -> str:
        """NFKC, as the user model stores names and the browser's sign-in reads them."""
        return get_user_model().normalize_username(value)


class RegisterSerializer(CredentialsSerializer):
    def validate_username(self, value: str) -> str:
        """Checked as it will be stored: NFKC-normalised ("ｓｔａｆｆ" is "staff"), as the
        browser's sign-up and sign-in see it too."""
        user_model = get_user_model()
        value = super().validate_username(value)
        field = user_model._meta.get_field("username")
        for validator in field.validators:
            validator(value)
        if user_model.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("that username is taken")
        return value

    def validate(self, attrs: dict) -> dict:
        user = get_user_model()(username=attrs["username"])
        try:
            password_validation.validate_password(attrs["password"], user)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": exc.messages}) from None
        return attrs


class PurchaseTokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="seconds")


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
