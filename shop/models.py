"""The catalog: products that sales put on offer."""

from decimal import Decimal

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models


class Product(models.Model):
    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    price = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text="List price; a sale sets its own price.",
    )
    swatch = models.CharField(
        max_length=7,
        default="#d33f49",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a #rrggbb colour.")],
        help_text="Colour shown in place of a product photo.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
