"""End to end in Chromium: sign up, wait for the sale to open, buy, see the order, pay; a second
tab sees the stock drop; a stale page's buy after sell-out gets the sold-out message; a double
click places one order."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from seckill.models import Order, OrderStatus, Sale
from seckill.placement import place_order
from tests.browser.conftest import PASSWORD
from tests.engine.factories import make_sale

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ORDER_URL = re.compile(r"/orders/(\d+)/$")


def field(page, name: str):
    return page.locator(f'[data-field="{name}"]')


def buy_button(page):
    return page.get_by_role("button", name="Buy now")


def test_sign_up_wait_for_the_start_buy_and_pay(new_context, artifacts):
    context = new_context()
    page = context.new_page()
    page.goto("/accounts/signup/?next=/orders/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/orders/")
    expect(page.get_by_role("button", name="Log out alice")).to_be_visible()

    # The sale starts a few seconds from now (created here, so a slow sign-up cannot eat them).
    sale = make_sale(stock=3, strategy="lock_fenced", starts_in=timedelta(seconds=5))
    page.goto(f"/sales/{sale.pk}/")

    # Before the start: a countdown and a disabled button.
    expect(field(page, "status")).to_have_text("Starts soon")
    expect(buy_button(page)).to_be_disabled()
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^00:0[0-5]$"))  # mm:ss

    watcher = context.new_page()  # a second tab on the same sale
    watcher.goto(f"/sales/{sale.pk}/")
    expect(field(watcher, "stock_left")).to_have_text("3")
    listing = context.new_page()  # and a third on the sales list
    listing.goto("/")
    listed = listing.locator(f'[data-sale-id="{sale.pk}"]')

    # The countdown reaches zero and the page opens the sale by itself.
    expect(buy_button(page)).to_be_enabled(timeout=15_000)
    expect(field(page, "status")).to_have_text("Live now")
    page.screenshot(path=artifacts / "sale-page.png", full_page=True)

    buy_button(page).click()
    page.wait_for_url(ORDER_URL)
    order_id = int(ORDER_URL.search(page.url).group(1))
    expect(field(page, "order-id")).to_have_text(str(order_id))
    expect(field(page, "order-status")).to_have_text("Pending payment")
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^(\d+:)?[0-5]\d:[0-5]\d$"))
    expect(page.locator('[data-fact="fence"]')).to_contain_text("fencing token")
    page.screenshot(path=artifacts / "order-page.png", full_page=True)

    # The other tabs see the sale open and the stock drop without a reload.
    expect(field(watcher, "stock_left")).to_have_text("2")
    expect(field(listed, "status")).to_have_text("Live now")
    expect(field(listed, "stock_left")).to_have_text("2")
    expect(listed.get_by_text("opens in")).to_be_hidden()
    watcher.reload()  # and, reloaded, the teaching panel explains the purchase
    expect(watcher.locator('[data-fact="order-id"]')).to_have_text(str(order_id))
    watcher.screenshot(path=artifacts / "sale-page-after-purchase.png", full_page=True)

    page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    expect(field(page, "order-status")).to_have_text("Paid")
    expect(page.get_by_role("status")).to_contain_text("Paid. Thank you!")
    assert Order.objects.get(pk=order_id).status == OrderStatus.PAID
    page.get_by_role("link", name="My orders", exact=True).click()
    expect(page.get_by_role("link", name=str(order_id))).to_be_visible()


def test_a_stale_page_buying_after_sell_out_is_told_sold_out(new_context, make_user, artifacts):
    sale = make_sale(stock=1)
    page = new_context(make_user("bob"), phone=True).new_page()
    page.goto(f"/sales/{sale.pk}/")
    expect(buy_button(page)).to_be_enabled()

    place_order(sale.pk, get_user_model().objects.create_user("quick"), 1)  # the last unit

    expect(field(page, "stock_left")).to_have_text("0")
    expect(field(page, "status")).to_have_text("Sold out")
    expect(buy_button(page)).to_be_disabled()
    # A page that had not caught up yet submits anyway: the server says why it failed.
    with page.expect_navigation():
        page.evaluate("document.querySelector('[data-buy-form]').requestSubmit()")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Sold out")
    expect(alert).to_contain_text("Every unit has been sold")
    page.screenshot(path=artifacts / "sale-page-sold-out-phone.png", full_page=True)
    assert Order.objects.count() == 1


def test_double_click_and_resubmits_place_one_order(new_context, make_user):
    sale = make_sale(stock=10, per_user_limit=5)  # the limit would allow a second order
    carol = make_user("carol")
    page = new_context(carol).new_page()
    page.goto(f"/sales/{sale.pk}/")
    with page.expect_navigation(url=ORDER_URL):
        buy_button(page).dblclick()
    assert Order.objects.filter(buyer=carol).count() == 1

    # Without the button's guard: one page's form posted twice at once, then once more later
    # (a refresh-resubmit). The server's Idempotency-Key replays the first order each time.
    page.goto(f"/sales/{sale.pk}/")
    urls = page.evaluate(
        """async () => {
          const form = document.querySelector('[data-buy-form]');
          const post = () => fetch(form.action, {method: 'POST', body: new FormData(form)});
          const both = await Promise.all([post(), post()]);
          const again = await post();
          return [...both, again].filter(r => r.ok).map(r => r.url);
        }"""
    )
    assert urls and all(ORDER_URL.search(url) for url in urls), urls
    assert len(set(urls)) == 1
    assert Order.objects.filter(buyer=carol).count() == 2


def test_purchase_token_sale_buys_with_one_click(new_context, make_user):
    """The page fetches the single-use purchase token as the buyer presses Buy."""
    sale = make_sale(stock=2)
    Sale.objects.filter(pk=sale.pk).update(require_purchase_token=True)
    dave = make_user("dave")
    page = new_context(dave).new_page()
    page.goto(f"/sales/{sale.pk}/")
    with page.expect_navigation(url=ORDER_URL):
        buy_button(page).click()
    assert Order.objects.filter(buyer=dave, sale=sale).count() == 1


def test_staff_dashboard_compares_stock_and_resets_a_sale(new_context, make_user, artifacts):
    sale = make_sale(stock=4, per_user_limit=2)
    buyer = get_user_model().objects.create_user("eve")
    place_order(sale.pk, buyer, 2)
    page = new_context(make_user("boss", staff=True)).new_page()
    page.goto("/staff/")
    row = page.locator(f'tr[data-sale-id="{sale.pk}"]')
    expect(row.locator('[data-field="db-stock"]')).to_have_text("2 / 4")
    expect(row.locator('[data-field="redis-stock"]')).to_contain_text("(in sync)")
    expect(row.locator('[data-field="orders"]')).to_contain_text("pending_payment: 1")
    page.screenshot(path=artifacts / "staff-dashboard.png", full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())  # "Reset sale #…?" confirmation
    row.get_by_role("button", name=f"Reset sale #{sale.pk}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Sale {sale.pk} reset")
    expect(row.locator('[data-field="db-stock"]')).to_have_text("4 / 4")
    assert not Order.objects.filter(sale=sale).exists()
