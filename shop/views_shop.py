"""The shopper's pages: a sale, the buy button, an order, pay and cancel, my orders.

Each view parses the request, calls one service (``seckill.placement`` or
``seckill.lifecycle``) and renders; refusals come back as SeckillError and are shown with the
copy from :mod:`shop.pages`. Successful POSTs redirect (POST/redirect/GET), so a refresh never
repeats them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from seckill import lifecycle, rate_limit
from seckill.errors import Busy, InvalidRequest, NotFound, SeckillError
from seckill.models import Order, Sale
from seckill.placement import place_order
from seckill.selectors.orders import owned_order
from seckill.selectors.sales import get_sale
from shop import pages
from shop.forms import BuyForm
from shop.views_common import seckill_errors

REPLAYED = (
    "You had already placed this order, so here it is again: the page sent the same "
    "Idempotency-Key, and a replayed key returns the first order instead of a second one."
)


def render_sale(
    request: HttpRequest,
    sale: Sale,
    *,
    form: BuyForm | None = None,
    error: pages.PageError | None = None,
) -> HttpResponse:
    """The sale page; after a refused purchase, with the error and the same form (same key)."""
    if form is None:
        form = BuyForm(initial={"quantity": 1, "idempotency_key": pages.new_idempotency_key()})
    card = pages.sale_cards([sale])[0]
    allowance = (
        pages.buyer_allowance(card, request.user.pk) if request.user.is_authenticated else None
    )
    if error and error.code == "limit_reached" and allowance:
        error = replace(error, hint=f"{allowance.note} {error.hint}")
    status_copy = pages.status_copy()
    context = {
        "card": card,
        "sale": sale,
        "allowance": allowance,
        "form": form,
        "error": error,
        "status_copy": status_copy,
        "banner": status_copy[card.status],
        "strategy": pages.strategy_info(sale.strategy),
        "facts": pages.facts_for_sale(request.session, sale.pk),
        "server_now_ms": pages.server_now_ms(),
    }
    response = render(request, "shop/sale.html", context, status=error.status if error else 200)
    if error and error.retry_after:
        response["Retry-After"] = str(error.retry_after)
    return response


def placement_throttle_wait(request: HttpRequest) -> float | None:
    """The API's placement rate limits, per buyer and per address, applied to the buy form too:
    otherwise a bot would simply post the form instead. Seconds to wait, or None."""
    wait = rate_limit.placement_wait(
        buyer_id=request.user.pk, address=rate_limit.client_address(request)
    )
    return wait or None


@never_cache
@require_safe
@seckill_errors
def sale_detail(request: HttpRequest, sale_id: int) -> HttpResponse:
    return render_sale(request, get_sale(sale_id=sale_id))


@require_POST
@seckill_errors
def buy(request: HttpRequest, sale_id: int) -> HttpResponse:
    """Place the order; on success redirect to it, on refusal redraw the sale page with the
    refusal and the same Idempotency-Key, so a retry can only replay, never double-buy."""
    sale = get_sale(sale_id=sale_id)
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("sale", args=[sale.pk]))
    wait = placement_throttle_wait(request)
    if wait is not None:
        slow_down = Busy("you have placed orders too quickly", retry_after=wait)
        return render_sale(
            request, sale, form=BuyForm(request.POST), error=pages.describe_error(slow_down)
        )
    form = BuyForm(request.POST)
    if not form.is_valid():
        invalid = InvalidRequest("check the highlighted field")
        return render_sale(request, sale, form=form, error=pages.describe_error(invalid))
    try:
        placement = place_order(
            sale.pk,
            request.user,
            form.cleaned_data["quantity"],
            form.cleaned_data["idempotency_key"],
            form.cleaned_data["purchase_token"],
        )
    except NotFound:
        raise
    except SeckillError as exc:
        return render_sale(request, sale, form=form, error=pages.describe_error(exc))
    pages.remember_placement(request.session, sale.pk, placement)
    if not placement.created:
        messages.info(request, REPLAYED)
    return redirect("order", order_id=placement.order.pk)


@never_cache
@login_required
@require_safe
@seckill_errors
def order_detail(request: HttpRequest, order_id: int) -> HttpResponse:
    order = owned_order(order_id=order_id, buyer=request.user)
    sale = get_sale(sale_id=order.sale_id)
    context = {
        "order": order,
        "sale": sale,
        "queued": bool(getattr(order, "queued", False)),
        "actions": pages.order_actions(order),
        "strategy": pages.strategy_info(order.strategy),
        "facts": pages.facts_for_order(request.session, order),
        "server_now_ms": pages.server_now_ms(),
    }
    return render(request, "shop/order.html", context)


def _order_action(
    request: HttpRequest,
    order_id: int,
    action: Callable[[int, AbstractBaseUser], Order],
    done: str,
) -> HttpResponse:
    """Run pay or cancel; a refusal (e.g. the window closed) is flashed on the order page."""
    try:
        action(order_id, request.user)
    except NotFound:
        raise
    except SeckillError as exc:
        error = pages.describe_error(exc)
        messages.error(request, f"{error.title}: {error.message}. {error.hint}")
    else:
        messages.success(request, done)
    return redirect("order", order_id=order_id)


@login_required
@require_POST
@seckill_errors
def order_pay(request: HttpRequest, order_id: int) -> HttpResponse:
    return _order_action(request, order_id, lifecycle.pay_order, "Paid. Thank you!")


@login_required
@require_POST
@seckill_errors
def order_cancel(request: HttpRequest, order_id: int) -> HttpResponse:
    return _order_action(
        request, order_id, lifecycle.cancel_order, "Cancelled; the units went back on sale."
    )


@login_required
@require_safe
@seckill_errors
def my_orders(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/orders.html", {"orders": pages.orders_of(request.user)})
