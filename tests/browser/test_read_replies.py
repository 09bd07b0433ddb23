"""Reading a reply with the receipt in real Chromium, in every browser mode.

A thread and a reply sealed and signed on the desk are stored straight into
the server's database and data directory; the submitter types the receipt on
``/replies``. With JavaScript the browser derives the lookup token and the
reply secret, checks the desk's signature against the signing key the page
embeds, and opens the reply itself: no request carries the receipt (only the
lookup token). Without JavaScript the form posts the receipt and the server
checks and opens the reply for that request. A reply whose signature fails
(planted by whoever controls the server) is not shown, in every mode, and the
page says that a reply could not be verified.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import JS_MODES, Server, Team
from nacl.signing import SigningKey
from playwright.sync_api import Request
from source_fixtures import running_source
from sqlalchemy import select

from portal import envelope, receipt, replykey, signing, storage
from portal.config import DATABASE_NAME
from portal.db import Database
from portal.envelope import SealPath
from portal.keys import load_manifest
from portal.models import Reply, SealedBy, Thread

DESK = SigningKey(bytes(range(32)))  # the test desk's signing key (public test data)
FORGER = SigningKey(bytes(range(1, 33)))
UNVERIFIED = "A reply could not be verified as coming from the team"


@pytest.fixture
def server(tmp_path: Path, team: Team) -> Iterator[Server]:
    """A source server whose manifest lists the test desk's signing key (DESK)."""
    manifest = load_manifest(team.manifest_dir / "manifest.json")
    entry = {"label": "Browser test signing key", "public_key": "", "created": "2026-11-23"}
    public = bytes(DESK.verify_key)
    doc = manifest.to_json()
    doc["signing_keys"] = [{**entry, "public_key": _b64(public),
                            "fingerprint": signing.fingerprint(public)}]  # fmt: skip
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "manifest.json").write_text(json.dumps(doc))
    data_dir, secret = tmp_path / "data", secrets.token_urlsafe(48)
    settings = {"PORTAL_SECRET_KEY": secret, "PORTAL_KEYS": str(keys),
                "PORTAL_DATA_DIR": str(data_dir)}  # fmt: skip
    with running_source(settings, tmp_path) as (url, log):
        yield Server(url, data_dir, log, secret, dataclasses.replace(team, manifest_dir=keys))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def plant(server: Server, text: str, signer: SigningKey | None = DESK) -> str:
    """A thread for a new receipt, with one reply signed by ``signer``; the receipt shown."""
    shown = receipt.display(receipt.generate())
    reply_key = receipt.reply_public_key(shown)
    digest = receipt.lookup_digest(
        receipt.server_digest_key(server.secret.encode()), receipt.lookup_token(shown)
    )
    report = envelope.seal(b"{}", [reply_key], SealPath.BROWSER)
    db = Database(f"sqlite:///{server.data_dir / DATABASE_NAME}")
    today = dt.datetime.now(dt.UTC).date()
    stored = replykey.mask(replykey.mask_key(server.secret.encode()), digest, reply_key)
    incoming = storage.Incoming(
        report, envelope.parse_header(report), digest, stored, SealedBy.BROWSER
    )
    storage.store(db, server.data_dir, incoming, today)
    with db.session() as session:
        (thread_id,) = session.execute(
            select(Thread.id).where(Thread.lookup_digest == digest)
        ).one()
    document = {"type": "reprisal-reply", "version": 1, "thread_id": thread_id, "text": text}
    sealed = envelope.seal(json.dumps(document).encode(), [reply_key], SealPath.DESK)
    reply_id = uuid.uuid4().hex
    path = storage.reply_path(server.data_dir, reply_id)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(sealed)
    with db.session() as session:
        signature = (
            None
            if signer is None
            else signing.sign(signer, signing.reply_message(thread_id, sealed))
        )
        session.add(Reply(id=reply_id, thread_id=thread_id, received_on=today, size=len(sealed),
                          signature=signature))  # fmt: skip
        session.commit()
    db.engine.dispose()
    return shown


@pytest.mark.parametrize("mode", [*JS_MODES, "no-js"])
def test_the_submitter_reads_a_reply_in_every_mode(server: Server, browser_for, mode: str):
    marker = f"Reply {uuid.uuid4().hex} <b>plain</b>\nЖурналист"
    shown = plant(server, marker)
    digits = shown.replace(" ", "")
    context = browser_for(mode)
    page = context.new_page()
    sent: list[str] = []

    def record(request: Request) -> None:
        sent.append(request.url + " " + (request.post_data or "") + json.dumps(request.headers))

    page.on("request", record)
    page.goto(server.url + "/replies")
    page.fill('[name="receipt"]', shown)
    page.click('button[type="submit"]')
    page.wait_for_selector("[data-reply-text]", timeout=30_000)
    assert page.inner_text("[data-reply-text]") == marker
    if mode == "no-js":
        assert any(digits in s.replace("+", "").replace("%20", "") for s in sent)
    else:
        assert sent and not any(digits in s or shown in s for s in sent)
        assert any("/replies/sealed" in s for s in sent)
    assert marker not in server.log.read_text(errors="replace")


@pytest.mark.parametrize("mode", [*JS_MODES, "no-js"])
def test_a_reply_the_desk_did_not_sign_is_not_shown(server: Server, browser_for, mode: str):
    forged = f"Forged {uuid.uuid4().hex}: come to the embassy"
    # Signed by another key in most modes; with no signature at all (as a reply stored before
    # migration 0005 has) in one.
    shown = plant(server, forged, FORGER if mode != "jitless" else None)
    context = browser_for(mode)
    page = context.new_page()
    page.goto(server.url + "/replies")
    page.fill('[name="receipt"]', shown)
    page.click('button[type="submit"]')
    page.wait_for_selector(f"[role=alert]:has-text('{UNVERIFIED}')", timeout=30_000)
    assert page.locator("[data-reply-text]").count() == 0
    assert forged not in page.content()
