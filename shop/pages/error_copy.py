"""The one place an engine error code becomes words on a page, and a sale status a banner."""

from __future__ import annotations

from dataclasses import dataclass

from seckill.errors import SeckillError
from seckill.models import SaleStatus


@dataclass(frozen=True)
class Copy:
    title: str
    hint: str


# The one place an error code becomes words on a page. Keys are SeckillError codes.
ERROR_COPY: dict[str, Copy] = {
    "sold_out": Copy(
        "Sold out",
        "Every unit has been sold. Units from cancelled or unpaid orders come back, so the "
        "button returns if stock does.",
    ),
    "limit_reached": Copy(
        "Limit reached",
        "Each buyer may hold only so many units of a sale, counting pending and paid orders. "
        "Your orders are under My orders.",
    ),
    "idempotency_mismatch": Copy(
        "That order was already placed",
        "This form was already used to order another quantity, and a resubmission can only "
        "return that first order. Your orders are under My orders; start again from the sale.",
    ),
    "not_live": Copy(
        "This sale is not live",
        "Buying opens when the countdown reaches zero, and closes when the sale ends.",
    ),
    "lab_busy": Copy(
        "Another lab run is in progress",
        "One crowd at a time shares the machine with the shop: wait for it to end, or stop it.",
    ),
    "busy": Copy(
        "Too many buyers at this moment",
        "Nothing was sold to you yet. Try again in {retry_after} s: the retry is safe, it can "
        "never create a second order.",
    ),
    "invalid": Copy("That request was not valid", "Check the quantity and try again."),
    "not_found": Copy("Not found", "It may have been removed; start again from the sales list."),
    "unavailable": Copy(
        "The shop is having trouble",
        "A backing service (Redis or the database) is down, so nothing was sold. Try again in "
        "a minute.",
    ),
    "purchase_token": Copy(
        "This sale needs a purchase pass",
        "The page fetches a single-use pass as you press Buy (JavaScript must be on). Reload the "
        "page and press Buy again.",
    ),
    "invalid_state": Copy(
        "That can't be done now", "The order has moved on; the page shows its current status."
    ),
}
FALLBACK_COPY = Copy("Something went wrong", "Please try again.")


@dataclass(frozen=True)
class PageError:
    """An error as a page shows it: headline, the service's own explanation, what to do."""

    code: str
    title: str
    message: str
    hint: str
    status: int
    retry_after: int | None = None


def describe_error(exc: SeckillError) -> PageError:
    """Page copy for a refusal from the engine, keyed by its stable code."""
    copy = ERROR_COPY.get(exc.code, FALLBACK_COPY)
    retry = max(1, round(exc.retry_after)) if exc.retry_after else None
    hint = copy.hint.format(retry_after=retry or 1)
    return PageError(exc.code, copy.title, exc.message, hint, exc.status, retry)


def status_copy() -> dict[str, dict[str, str]]:
    """Banner copy per sale status, for the template and (as JSON) for the live-update script."""
    return {
        SaleStatus.UPCOMING: {"title": "Starts soon", "hint": ERROR_COPY["not_live"].hint},
        SaleStatus.LIVE: {"title": "Live now", "hint": ""},
        SaleStatus.SOLD_OUT: {
            "title": ERROR_COPY["sold_out"].title,
            "hint": ERROR_COPY["sold_out"].hint,
        },
        SaleStatus.ENDED: {"title": "Ended", "hint": "This sale is over."},
    }
