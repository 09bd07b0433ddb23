"""Follow-ups with two files, sent through real Chromium with and without JavaScript.

With JavaScript (normal mode) a thread is planted as in test_followup.py; the
submitter types the receipt on ``/followup``, writes a marker and chooses two
files whose names and bytes carry it. The browser seals and uploads each
file, then seals the follow-up listing them and names their uploads in
``X-Attachments``. No request carries the marker or the receipt.

Without JavaScript the report itself is sent through the page first (the
server seals it after consent), and its receipt, copied from the
confirmation page, opens ``/followup``. The follow-up's form posts the
files (``multipart/form-data``) with the server-seal consent ticked; the
server seals each file as it streams in. The form body carries the marker
and the receipt, of course, but no URL or header does. Without the consent
nothing is kept (no row, no file): the page asks for the tick and for the
files again.

Either way the data directory and the log hold neither the marker nor the
receipt; the follow-up passes the desk's check (thread proof included); and
each file opens with the team's key to exactly its bytes and matches its
entry in the follow-up's list, as ``portal-desk decrypt`` writes it too,
saying it verified the SHA-256.
"""

from __future__ import annotations

import io
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from harness import PASSPHRASE, Server
from playwright.sync_api import Page
from test_attachments import Requests, check_files, make_files
from test_followup import assert_no_trace, fill, plant
from test_submit import RECEIPT, expected_fields, stored_envelopes
from test_submit import fill as fill_report

from portal import attachment, envelope, keyfile, receipt
from portal.config import DATABASE_NAME
from portal.desk import followups

CONSENT = '[name="server_seal_consent"]'
SEND = '#followup-form button[type="submit"]:visible'


def open_all(server: Server, first: Path, shown: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The follow-up's checked document, and each attachment (by id) with its file."""
    key = keyfile.load(server.team.key_file, PASSPHRASE)
    document: dict[str, Any] | None = None
    files: dict[str, Any] = {}
    for path in sorted(first.parent.glob("*.env")):
        if path == first:
            continue
        plain = envelope.open_bytes(path.read_bytes(), [key.private_key])
        if plain.startswith(attachment.MAGIC):
            out = io.BytesIO()
            meta = attachment.decode(io.BytesIO(plain), out)
            files[meta.id] = (meta, out.getvalue(), path)
            continue
        assert document is None, "two follow-ups stored"
        sealed_by = envelope.parse_header(path.read_bytes()).path.name.lower()
        checked = followups.check(plain, sealed_by, receipt.reply_public_key(shown),
                                  [key.private_key])  # fmt: skip
        assert checked.problems == ()
        document = checked.document
    assert document is not None, "no follow-up stored"
    return document, files


def send_report_without_js(page: Page, server_url: str, marker: str) -> str:
    """A report sent through the page, sealed by the server; the receipt it shows."""
    page.goto(f"{server_url}/report")
    fill_report(page, expected_fields(marker))
    page.check(CONSENT)
    page.click('#report-form button[type="submit"]:visible')
    found = RECEIPT.search(page.inner_text("[data-receipt]"))
    assert found, "no receipt on the confirmation page"
    return found.group()


def assert_not_in_urls_or_headers(requests: Requests, *needles: str) -> None:
    for method, url, headers, _ in requests.seen:
        for needle in needles:
            assert needle not in url, f"found in the URL of a {method}"
            assert needle not in json.dumps(headers, ensure_ascii=False), f"in a {method} header"


def data_files(server: Server) -> dict[str, bytes]:
    """Every file of the data directory but the database (and its journals), with its bytes."""
    return {
        str(p.relative_to(server.data_dir)): p.read_bytes()
        for p in server.data_dir.rglob("*")
        if p.is_file() and not p.name.startswith(DATABASE_NAME)
    }


def submission_rows(server: Server) -> int:
    with sqlite3.connect(f"file:{server.data_dir / DATABASE_NAME}?mode=ro", uri=True) as db:
        (count,) = db.execute("SELECT count(*) FROM submissions").fetchone()
    return int(count)


def test_a_follow_up_with_two_files_reaches_the_desk_whole(
    server: Server, browser_for: Any, tmp_path: Path
) -> None:
    shown, first = plant(server)
    marker = f"FOLLOWUP-FILES-{uuid.uuid4().hex}"
    chosen = make_files(tmp_path / "files", marker, [900_000, 40_000])
    page = browser_for("normal").new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    requests = Requests(page)
    page.goto(f"{server.url}/followup")
    fill(page, shown, marker)
    page.set_input_files("#attachment-files", [str(p) for p in chosen])
    page.click(SEND)
    page.wait_for_selector("[data-followup-sent]", timeout=180_000)
    assert not errors
    requests.assert_clean(marker)
    digits = shown.replace(" ", "")
    requests.assert_clean(digits)
    requests.assert_clean(shown)
    token = receipt.lookup_token(shown).hex()
    (sealed,) = [(h, b) for m, u, h, b in requests.seen if u.endswith("/followup/sealed")]
    assert sealed[0]["x-lookup-token"] == token
    assert len(sealed[0]["x-attachments"].split(" ")) == 2
    document, files = open_all(server, first, shown)
    assert document["sealed_by"] == "browser"
    assert document["fields"] == {"account": marker, "consent_publication": "no"}
    check_files(document, files, chosen, server)
    assert_no_trace(server, marker, digits)


# --- JavaScript off ----------------------------------------------------------------------------


def test_without_javascript_a_follow_up_carries_two_files_after_consent(
    server: Server, browser_for: Any, tmp_path: Path
) -> None:
    marker = f"MARKER-{uuid.uuid4().hex}"
    chosen = make_files(tmp_path / "files", marker, [1_500_000, 40_000])  # 23 pieces of 64 KiB
    page = browser_for("no-js").new_page()
    requests = Requests(page)
    shown = send_report_without_js(page, server.url, marker)
    (first,) = stored_envelopes(server.data_dir)
    page.goto(f"{server.url}/followup")
    fill(page, shown, marker)
    page.check(CONSENT)
    page.set_input_files("#attachment-files", [str(p) for p in chosen])
    page.click(SEND)
    page.wait_for_selector("[data-followup-sent]", timeout=180_000)
    digits = shown.replace(" ", "")
    # The form itself went to the server (Chromium does not show a body that has files).
    (posted,) = [h for m, u, h, _ in requests.seen if m == "POST" and u.endswith("/followup/plain")]
    assert posted["content-type"].startswith("multipart/form-data")
    assert_not_in_urls_or_headers(requests, marker, shown, digits)
    document, files = open_all(server, first, shown)
    assert document["sealed_by"] == "server"
    assert document["fields"] == {"account": marker, "consent_publication": "no"}
    check_files(document, files, chosen, server)
    assert len(stored_envelopes(server.data_dir)) == 4  # no spooled part is left over
    assert_no_trace(server, marker, digits)


def test_without_javascript_and_without_consent_a_follow_up_with_a_file_keeps_nothing(
    server: Server, browser_for: Any, tmp_path: Path
) -> None:
    shown, _ = plant(server)
    marker = f"MARKER-{uuid.uuid4().hex}"
    chosen = make_files(tmp_path / "files", marker, [300_000])
    before, rows = data_files(server), submission_rows(server)
    page = browser_for("no-js").new_page()
    page.goto(f"{server.url}/followup")
    fill(page, shown, marker)
    page.set_input_files("#attachment-files", [str(p) for p in chosen])
    page.click(SEND)
    alert = page.inner_text("[data-form-alert]")
    assert "choose them again: they were not kept" in alert, alert
    assert "tick the box if you agree" in alert, alert
    assert page.locator(".server-seal.has-problem").count() == 1
    assert not page.is_checked(CONSENT)
    assert page.input_value('[name="receipt"]') == ""  # the receipt is never echoed back
    assert page.input_value('[name="account"]') == marker  # the rest is filled in again
    assert page.locator("[data-followup-sent]").count() == 0
    assert submission_rows(server) == rows
    assert data_files(server) == before
    assert_no_trace(server, marker, shown.replace(" ", ""))
