"""The source pages fit a 320 px wide screen, in real Chromium, with and without JavaScript.

Nothing may scroll sideways; the CSP must not block anything the page
loads (Chromium reports violations on the console); right-to-left pages
keep the fingerprints and the receipt readable left to right.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, from this directory's session-wide Playwright (conftest.py)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("path", ["/", "/report"])
def test_pages_fit_320_px_and_break_no_csp_rule(chromium, source_server, javascript, path):
    url, _ = source_server
    context = chromium.new_context(
        viewport={"width": 320, "height": 640}, java_script_enabled=javascript
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(url + path)
    page.wait_for_load_state("networkidle")
    # Playwright measures from its own isolated world, even with the page's JavaScript off.
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1] == 320, widths
    assert problems == []
    context.close()


def test_the_form_is_styled_by_the_stylesheet_only(chromium, source_server):
    url, _ = source_server
    context = chromium.new_context(viewport={"width": 320, "height": 640})
    page = context.new_page()
    page.goto(url + "/report")
    button = page.locator('#report-form button[type="submit"]')
    colour = button.evaluate("b => getComputedStyle(b).backgroundColor")
    assert colour == "rgb(11, 79, 138)"  # portal.css loaded under the CSP
    box = button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 320
    context.close()


def test_a_right_to_left_page_keeps_digits_left_to_right(chromium, source_server):
    url, _ = source_server
    context = chromium.new_context(viewport={"width": 320, "height": 640})
    page = context.new_page()
    page.goto(url + "/report")
    page.evaluate("() => document.documentElement.setAttribute('dir', 'rtl')")
    code = page.locator(".keys code").first
    assert code.evaluate("c => getComputedStyle(c).direction") == "ltr"
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1]
    context.close()
