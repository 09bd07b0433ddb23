"""The form works before the crypto arrives, and a crypto failure is never silent."""

from __future__ import annotations

from typing import Any

from harness import Server
from playwright.sync_api import Route
from test_submit import RECEIPT, expected_fields, fill, stored_envelopes


def test_form_is_usable_before_the_crypto_arrives(server: Server, browser_for: Any) -> None:
    page = browser_for("normal").new_page()
    held: list[Route] = []
    page.route("**/dist/crypto*.js", lambda route: held.append(route))
    page.goto(f"{server.url}/report", wait_until="commit")
    page.wait_for_selector("#report-form", state="visible")
    fill(page, expected_fields("MARKER-early"))
    # Clicked while the crypto is still held back.
    page.click('#report-form button[type="submit"]:visible')
    while not held:
        page.wait_for_timeout(10)
    assert page.evaluate("() => self.PortalCrypto === undefined")
    assert stored_envelopes(server.data_dir) == []
    held[0].continue_()
    receipt_text = page.locator("[data-receipt]").first
    receipt_text.wait_for(state="visible", timeout=60_000)
    assert RECEIPT.fullmatch(receipt_text.inner_text().strip())
    assert len(stored_envelopes(server.data_dir)) == 1


def test_crypto_that_cannot_load_says_so_and_sends_nothing(
    server: Server, browser_for: Any
) -> None:
    page = browser_for("normal").new_page()
    page.route("**/dist/crypto*.js", lambda route: route.abort())
    bodies: list[bytes] = []
    page.on("request", lambda request: bodies.append(request.post_data_buffer or b""))
    page.goto(f"{server.url}/report")
    fill(page, expected_fields("MARKER-never-sent"))
    page.click('#report-form button[type="submit"]:visible')
    alert = page.locator("[data-form-alert]")
    alert.wait_for(state="visible", timeout=30_000)
    assert "nothing was sent" in alert.inner_text()
    assert all(b"MARKER-never-sent" not in body for body in bodies)
    assert stored_envelopes(server.data_dir) == []


def test_with_javascript_on_but_form_js_blocked_nothing_can_post_the_plaintext(
    server: Server, browser_for: Any
) -> None:
    """Without form.js in control there is no usable submit button, and Enter does nothing."""
    page = browser_for("normal").new_page()
    page.route("**/dist/form*.js", lambda route: route.abort())
    bodies: list[bytes] = []
    page.on("request", lambda request: bodies.append(request.post_data_buffer or b""))
    page.goto(f"{server.url}/report")
    fill(page, expected_fields("MARKER-blocked"))
    assert page.locator('#report-form button[type="submit"]:visible').count() == 0
    assert page.locator("[data-js-waiting]").is_visible()
    page.press('[name="country"]', "Enter")
    page.wait_for_timeout(500)
    assert page.url.endswith("/report")
    assert all(b"MARKER-blocked" not in body for body in bodies)
    assert stored_envelopes(server.data_dir) == []


def test_without_javascript_the_waiting_note_is_hidden(server: Server, browser_for: Any) -> None:
    page = browser_for("no-js").new_page()
    page.goto(f"{server.url}/report")
    assert not page.locator("[data-js-waiting]").is_visible()
    assert page.locator('#report-form button[type="submit"]:visible').count() == 1
