"""Sales and orders: the database is the record of what was sold.

Redis mirrors a live sale's stock for the hot path (see ``seckill.stock``); these tables are what
the audit trusts and what Redis is rebuilt from.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Strategy(models.TextChoices):
    UNSAFE = "unsafe", "No lock (oversells; teaching)"
    NAIVE_LOCK = "naive_lock", "SETNX + EXPIRE + DEL (oversells; teaching)"
    LOCK = "lock", "Token lock with watchdog"
    LOCK_FENCED = "lock_fenced", "Token lock + fencing token"
    REDIS_ATOMIC = "redis_atomic", "Atomic Lua deduction, persisted by Celery"
    DB_ROW_LOCK = "db_row_lock", "SELECT … FOR UPDATE"


class SaleStatus(models.TextChoices):
    UPCOMING = "upcoming"
    LIVE = "live"
    SOLD_OUT = "sold_out"
    ENDED = "ended"


class Sale(models.Model):
    product = models.ForeignKey("shop.Product", on_delete=models.PROTECT, related_name="sales")
    price = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0.00"))]
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    stock_total = models.PositiveIntegerField(validators=[MaxValueValidator(10_000_000)])
    # Not a PositiveIntegerField on purpose: the teaching strategies must be able to show
    # the damage they do; the safe ones never let it fall below zero.
    stock_left = models.IntegerField()
    per_user_limit = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.LOCK)
    # Highest fencing token that has written to this sale (strategy lock_fenced).
    last_fence = models.BigIntegerField(default=0)
    require_purchase_token = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="sale_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product} sale #{self.pk}"

    def is_open_at(self, now) -> bool:
        """Within its window (started, not ended), sold out or not: the time orders and purchase
        tokens are taken; the stock is the strategies' to judge."""
        return self.starts_at <= now < self.ends_at

    def status_at(self, now) -> str:
        if now < self.starts_at:
            return SaleStatus.UPCOMING
        if now >= self.ends_at:
            return SaleStatus.ENDED
        if self.stock_left <= 0:
            return SaleStatus.SOLD_OUT
        return SaleStatus.LIVE

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


LIVE_ORDER_STATUSES = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID)


class Order(models.Model):
    # Snowflake id from idgen: unique across processes, increasing in time.
    id = models.BigIntegerField(primary_key=True)
    sale = models.ForeignKey(Sale, on_delete=models.PROTECT, related_name="orders")
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="seckill_orders"
    )
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING_PAYMENT
    )
    strategy = models.CharField(max_length=16, choices=Strategy.choices)
    fence = models.BigIntegerField(null=True, blank=True)
    lock_wait_ms = models.FloatField(null=True, blank=True)
    # Group commit (lock, lock_fenced): the batch is the lock hold that decided the order (its
    # ``fence``; ``lock_wait_ms`` is the combiner's wait); 1-based position and batch size.
    batch_position = models.PositiveIntegerField(null=True, blank=True)
    batch_size = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    pay_by = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Keys are scoped to the sale's order endpoint (POST /sales/<id>/orders/), as the
            # redis_atomic script's per-sale index is: the same key on another sale is another
            # request, never a conflict that could stop an accepted order from being written.
            models.UniqueConstraint(
                fields=["sale", "buyer", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="order_idempotency_key_unique_per_sale_buyer",
            ),
        ]
        indexes = [
            models.Index(fields=["sale", "status"]),
            models.Index(fields=["status", "pay_by"]),
        ]

    def __str__(self) -> str:
        return f"order {self.id}"

    @property
    def batch_id(self) -> str | None:
        """Group commit: the lock hold (sale and fence) whose batch decided this order."""
        return None if self.batch_position is None else f"{self.sale_id}:{self.fence}"

    @property
    def total(self) -> Decimal:
        return self.unit_price * self.quantity
