"""The lab in Chromium: unsafe with a delay oversells and draws overlapping bars; lock with the
same crowd sells exactly the stock, one bar at a time; lock_fenced with a stalled holder shows
the refused write; the page updates while a run is going, and two kept runs show side by side."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from seckill.lab.models import LabRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The same crowd for unsafe and lock.
CROWD = {"stock": "4", "buyers": "16", "delay_ms": "300", "lease_ms": "1000", "stall_ms": "0"}
# A run that outlasts the page's 1 s poll, one holder and one second at a time, to be stopped.
LONG = {"stock": "500", "buyers": "500", "delay_ms": "1000", "lease_ms": "2000", "stall_ms": "0"}
STALLED = {"stock": "1", "buyers": "4", "delay_ms": "10", "lease_ms": "150", "stall_ms": "600"}


def run(page, strategy: str, values: dict[str, str]):
    page.get_by_label("Strategy").select_option(strategy)
    for name, value in values.items():
        page.locator(f'input[name="{name}"]').fill(value)
    page.get_by_role("button", name="Run", exact=True).click()
    panel = page.locator(".lab-panel")
    expect(panel.locator('[data-field="status"]')).to_have_text("finished", timeout=30_000)
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_enabled()
    return panel


def figure(panel, name: str) -> int:
    return int(panel.locator(f'[data-field="{name}"]').inner_text())


def test_the_lab_shows_the_race_the_lock_and_the_fence(new_context, make_user, artifacts):
    page = new_context(make_user("teacher", staff=True)).new_page()
    page.goto("/lab/")
    expect(page.get_by_role("heading", name="The lab")).to_be_visible()

    unsafe = run(page, "unsafe", CROWD)
    assert figure(unsafe, "sold") > 4 and figure(unsafe, "oversold") == figure(unsafe, "sold") - 4
    expect(unsafe.locator(".lab-tile--bad [data-field=oversold]")).to_be_visible()
    expect(unsafe.locator('path[data-oversold-line="true"]')).to_have_count(1)
    assert unsafe.locator('[data-bar][data-overlap="true"]').count() >= 2
    expect(unsafe.locator('[data-field="verdict"]')).to_have_attribute("data-ok", "false")
    expect(unsafe.locator('[data-field="narrative"]')).to_contain_text(
        "read the stock while another was between reading and writing"
    )
    unsafe.screenshot(path=artifacts / "lab-unsafe.png")

    lock = run(page, "lock", CROWD)
    assert figure(lock, "sold") == 4 and figure(lock, "oversold") == 0
    assert figure(lock, "most-at-once") == 1
    expect(lock.locator('[data-bar][data-overlap="true"]')).to_have_count(0)
    assert lock.locator("[data-bar]").count() >= 1
    expect(lock.locator('[data-field="verdict"]')).to_have_attribute("data-ok", "true")
    expect(lock.locator('[data-field="narrative"]')).to_contain_text("one buyer in at a time")

    fenced = run(page, "lock_fenced", STALLED)
    assert figure(fenced, "fence-refusals") == 1 and figure(fenced, "sold") == 1
    expect(fenced.locator('[data-bar][data-refused="true"][data-stalled="true"]')).to_have_count(1)
    expect(fenced.locator('[data-field="narrative"]')).to_contain_text("refused its write")
    expect(fenced.locator('[data-field="verdict"]')).to_have_attribute("data-ok", "true")
    fenced.screenshot(path=artifacts / "lab-lock-fenced-stalled.png")

    # A long run: the page redraws it while it runs, without a reload; Stop ends it.
    page.get_by_label("Strategy").select_option("lock")
    for name, value in LONG.items():
        page.locator(f'input[name="{name}"]').fill(value)
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function(
        """() => {
          const p = document.querySelector('.lab-panel[data-status="running"]');
          const sold = p && p.querySelector('[data-field="sold"]');
          return sold && Number(sold.textContent) >= 1;
        }""",
        timeout=15_000,
    )
    page.get_by_role("button", name="Stop").click()
    stopped = page.locator(".lab-panel")
    expect(stopped.locator('[data-field="status"]')).to_have_text("stopped", timeout=15_000)
    expect(stopped.locator('[data-field="narrative"]')).to_contain_text("You stopped the run.")
    assert figure(stopped, "sold") < 500

    # Kept runs: the list has all four; unsafe and lock side by side.
    rows = page.locator("[data-run-row]")
    expect(rows).to_have_count(4)
    ids = {run.strategy: run.pk for run in LabRun.objects.filter(status="finished")}
    for strategy in ("unsafe", "lock"):
        page.get_by_label(f"Compare run {ids[strategy]}").check()
    page.get_by_role("button", name="Compare").click()
    panels = page.locator(".lab-panel")
    expect(panels).to_have_count(2)
    expect(panels.nth(0).locator("h3")).to_have_text(re.compile(r"unsafe|lock$"))
    expect(page.locator(".lab-panels--two")).to_be_visible()
    page.locator("[data-lab-current]").screenshot(path=artifacts / "lab-compare.png")


def test_the_lab_is_staff_only(new_context, make_user):
    page = new_context(make_user("shopper")).new_page()
    response = page.goto("/lab/")
    assert response.status == 403
