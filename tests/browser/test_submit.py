"""A report submitted through real Chromium, in every browser mode, end to end.

Each test puts a unique marker in the report and then checks: no request
body ever carried it (JavaScript modes: the browser sealed it); the database,
the data directory and the server's log hold it nowhere (every mode); and
`portal-desk decrypt` of what was stored gives back every field.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import BIN, JS_MODES, Server
from playwright.sync_api import Page

from portal import envelope, receipt

RECEIPT = re.compile(r"\d{5}(?: \d{5}){5}")


def expected_fields(marker: str) -> dict[str, Any]:
    return {
        "target_kind": "individual",
        "target_role": ["defender", "journalist"],
        "submitter_relation": "relative",
        "un_body": ["hrc", "special_procedure"],
        "un_body_name": f"Special Rapporteur {marker}-name",
        "cooperation_kind": ["information"],
        "acts": ["threats", "detention", "relatives"],
        "setting": "both",
        "perpetrator": "state",
        "country": "Utopia",
        "when_month": "3",
        "when_year": "2025",
        "when_approximate": True,
        "ongoing_risk": "yes",
        "urgent": True,
        "consent_informed": "yes",
        "consent_publication": "anonymous",
        "consent_raise_with_state": "no",
        "consent_reply": "yes",
        "account": f"They came at night. {marker}\nЖурналист, محامية, défenseuse.",
    }


def fill(page: Page, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if isinstance(value, list):
            for item in value:
                page.check(f'[name="{name}"][value="{item}"]')
        elif value is True:
            page.check(f'[name="{name}"]')
        else:
            element = page.locator(f'[name="{name}"]').first
            tag = element.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '')")
            if tag.startswith("select"):
                page.select_option(f'[name="{name}"]', value)
            elif tag.endswith(":radio"):
                page.check(f'[name="{name}"][value="{value}"]')
            else:
                page.fill(f'[name="{name}"]', value)


def stored_envelopes(data_dir: Path) -> list[Path]:
    found = []
    for path in data_dir.rglob("*"):
        if not path.is_file():
            continue
        try:
            with path.open("rb") as fh:
                envelope.inspect(fh)
        except envelope.EnvelopeError:
            continue
        found.append(path)
    return found


def decrypt(server: Server, path: Path) -> dict[str, Any]:
    out = path.parent.parent / "opened.json"
    subprocess.run(
        [BIN / "portal-desk", "decrypt", "--secret-key", server.team.key_file,
         "--passphrase-file", server.team.passphrase_file, "-o", out, path],
        check=True, capture_output=True,
    )  # fmt: skip
    document: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    out.unlink()
    return document


def assert_no_trace(server: Server, marker: str) -> None:
    needle = marker.encode()
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), f"marker found in {path.name}"
    log = server.log.read_bytes()
    assert needle not in log
    assert b"127.0.0.1" not in log, "the server log names a client address"


def check_stored(server: Server, marker: str, shown: str, sealed_by: str) -> None:
    (path,) = stored_envelopes(server.data_dir)
    document = decrypt(server, path)
    assert document["type"] == "reprisal-report"
    assert document["sealed_by"] == sealed_by
    assert document["fields"] == expected_fields(marker)
    reply_key = base64.b64encode(receipt.reply_public_key(shown)).decode()
    assert document["reply_public_key"] == reply_key
    assert_no_trace(server, marker)


@pytest.mark.parametrize("mode", JS_MODES)
def test_report_is_sealed_in_the_browser(server: Server, browser_for: Any, mode: str) -> None:
    marker = f"MARKER-{uuid.uuid4().hex}"
    context = browser_for(mode)
    page = context.new_page()
    bodies: list[bytes] = []
    page.on("request", lambda request: bodies.append(request.post_data_buffer or b""))
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(f"{server.url}/report")
    fill(page, expected_fields(marker))
    page.click('#report-form button[type="submit"]:visible')
    shown = page.locator("[data-receipt]").first
    shown.wait_for(state="visible", timeout=60_000)
    text = shown.inner_text()
    assert RECEIPT.fullmatch(text.strip()), text
    assert not errors
    assert bodies and all(marker.encode() not in body for body in bodies)
    assert any(body.startswith(bytes([envelope.VERSION]) + envelope.MAGIC) for body in bodies)
    check_stored(server, marker, text, "browser")


def test_report_without_javascript_is_sealed_by_the_server_after_consent(
    server: Server, browser_for: Any
) -> None:
    marker = f"MARKER-{uuid.uuid4().hex}"
    page = browser_for("no-js").new_page()
    page.goto(f"{server.url}/report")
    fill(page, expected_fields(marker))
    page.click('#report-form button[type="submit"]:visible')
    # Without the explicit choice nothing is stored and the form explains why.
    assert stored_envelopes(server.data_dir) == []
    assert page.locator('[name="server_seal_consent"]').count() == 1
    fill(page, expected_fields(marker))  # whether or not the form kept the answers
    page.check('[name="server_seal_consent"]')
    page.click('#report-form button[type="submit"]:visible')
    match = RECEIPT.search(page.inner_text("body"))
    assert match, "no receipt on the confirmation page"
    check_stored(server, marker, match.group(0), "server")
