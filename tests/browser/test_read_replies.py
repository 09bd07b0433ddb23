"""Reading a reply with the receipt in real Chromium, in every browser mode.

A thread and a reply sealed on the desk are stored straight into the
server's database and data directory; the submitter types the receipt on
``/replies``. With JavaScript the browser derives the lookup token and the
reply secret and opens the reply itself: no request carries the receipt
(only the lookup token). Without JavaScript the form posts the receipt and
the server opens the reply for that request.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from harness import JS_MODES, Server
from playwright.sync_api import Request
from sqlalchemy import select

from portal import envelope, receipt, storage
from portal.config import DATABASE_NAME
from portal.db import Database
from portal.envelope import SealPath
from portal.models import Reply, SealedBy, Thread


def plant(server: Server, text: str) -> str:
    """A thread for a new receipt, with one reply; the receipt as displayed."""
    shown = receipt.display(receipt.generate())
    reply_key = receipt.reply_public_key(shown)
    digest = receipt.lookup_digest(
        receipt.server_digest_key(server.secret.encode()), receipt.lookup_token(shown)
    )
    report = envelope.seal(b"{}", [reply_key], SealPath.BROWSER)
    db = Database(f"sqlite:///{server.data_dir / DATABASE_NAME}")
    today = dt.datetime.now(dt.UTC).date()
    incoming = storage.Incoming(
        report, envelope.parse_header(report), digest, reply_key, SealedBy.BROWSER
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
        session.add(Reply(id=reply_id, thread_id=thread_id, received_on=today, size=len(sealed)))
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
