"""Keeping the lab out of the shop: the sale a lab run buys from is never listed.

It exists only while its run lasts (at most ``params.BOUNDS['time_limit_s']`` seconds) and is
deleted with its orders afterwards; meanwhile the sales list and the API leave it out, so no real
buyer wanders into a teaching crowd (and into its oversold stock).
"""

from __future__ import annotations

from django.db.models import QuerySet

LAB_PRODUCT = "Lab item (lab runs only, never on sale)"


def without_lab_sales(sales: QuerySet) -> QuerySet:
    return sales.exclude(product__name=LAB_PRODUCT)
