"""A follow-up sent through real Chromium, in every browser mode, and opened as the desk does.

A thread (a report sealed to the team's key) is stored straight into the
server's database and data directory; the submitter types the receipt on
``/followup``, writes a marker and changes one consent answer. With
JavaScript the browser seals the follow-up: no request carries the marker
or the receipt (only the lookup token). Without JavaScript nothing is
sealed before the explicit choice, and then the server seals it. In every
mode the database, the data directory and the log hold neither the marker
nor the receipt, and the desk's check (thread proof included) opens it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import JS_MODES, PASSPHRASE, Server
from playwright.sync_api import Page, Request

from portal import envelope, keyfile, receipt, replykey, report, storage
from portal.config import DATABASE_NAME
from portal.db import Database
from portal.desk import followups
from portal.envelope import SealPath
from portal.models import SealedBy


def plant(server: Server) -> tuple[str, Path]:
    """A thread for a new receipt; the receipt as displayed and its report's file."""
    shown = receipt.display(receipt.generate())
    reply_key = receipt.reply_public_key(shown)
    digest = receipt.lookup_digest(
        receipt.server_digest_key(server.secret.encode()), receipt.lookup_token(shown)
    )
    team = keyfile.load(server.team.key_file, PASSPHRASE)
    document = report.document({"account": "first"}, reply_key, "browser")
    sealed = envelope.seal(json.dumps(document).encode(), [team.recipient.public_key],
                           SealPath.BROWSER)  # fmt: skip
    db = Database(f"sqlite:///{server.data_dir / DATABASE_NAME}")
    stored = replykey.mask(replykey.mask_key(server.secret.encode()), digest, reply_key)
    incoming = storage.Incoming(sealed, envelope.parse_header(sealed), digest, stored,
                                SealedBy.BROWSER)  # fmt: skip
    first = storage.store(db, server.data_dir, incoming, dt.datetime.now(dt.UTC).date())
    db.engine.dispose()
    return shown, storage.envelope_path(server.data_dir, first)


def fill(page: Page, shown: str, marker: str) -> None:
    page.fill('[name="receipt"]', shown)
    page.fill('[name="account"]', marker)
    page.check('[name="consent_publication"][value="no"]')


def opened_followup(server: Server, first: Path, shown: str) -> dict[str, Any]:
    (path,) = [p for p in first.parent.iterdir() if p.suffix == ".env" and p != first]
    team = keyfile.load(server.team.key_file, PASSPHRASE)
    plain = envelope.open_bytes(path.read_bytes(), [team.private_key])
    sealed_by = envelope.parse_header(path.read_bytes()).path.name.lower()
    checked = followups.check(plain, sealed_by, receipt.reply_public_key(shown),
                              [team.private_key])  # fmt: skip
    assert checked.problems == ()
    return checked.document


def assert_no_trace(server: Server, *needles: str) -> None:
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle.encode() not in data, f"found in {path.name}"
    log = server.log.read_bytes()
    for needle in needles:
        assert needle.encode() not in log
    assert b"127.0.0.1" not in log


@pytest.mark.parametrize("mode", [*JS_MODES, "no-js"])
def test_a_follow_up_in_every_mode(server: Server, browser_for: Any, mode: str) -> None:
    shown, first = plant(server)
    digits = shown.replace(" ", "")
    marker = f"FOLLOWUP-{uuid.uuid4().hex}"
    page = browser_for(mode).new_page()
    sent: list[bytes] = []

    def record(request: Request) -> None:
        head = (request.url + json.dumps(request.headers)).encode()
        sent.append(head + b" " + (request.post_data_buffer or b""))

    page.on("request", record)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(f"{server.url}/followup")
    fill(page, shown, marker)
    if mode == "no-js":
        page.click('#followup-form button[type="submit"]:visible')
        assert [p for p in first.parent.iterdir() if p.suffix == ".env"] == [first]
        fill(page, shown, marker)  # the receipt is never echoed back
        page.check('[name="server_seal_consent"]')
    page.click('#followup-form button[type="submit"]:visible')
    page.wait_for_selector("[data-followup-sent]", timeout=60_000)
    assert not errors
    if mode == "no-js":
        assert any(marker.encode() in s for s in sent)
    else:
        assert not any(marker.encode() in s or digits.encode() in s for s in sent)
        assert not any(shown.encode() in s for s in sent)
        token = receipt.lookup_token(shown).hex().encode()
        assert any(b"/followup/sealed" in s and token in s for s in sent)
    document = opened_followup(server, first, shown)
    assert document["sealed_by"] == ("server" if mode == "no-js" else "browser")
    assert document["fields"] == {"account": marker, "consent_publication": "no"}
    assert (
        document["reply_public_key"] == base64.b64encode(receipt.reply_public_key(shown)).decode()
    )
    assert_no_trace(server, marker, digits)
