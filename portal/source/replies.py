"""``/replies``: the submitter reads the team's replies with the receipt, without JavaScript.

``POST /replies`` (CSRF) normalises the receipt, derives the lookup token and
the reply secret in memory for this one request, finds the thread by the
keyed digest of the token, opens each stored reply with the reply secret and
shows the texts (escaped by Jinja). Nothing about the receipt is stored or
logged. An unknown receipt and a thread without replies get the same
neutral 404 page, so the answer never tells whether a report was made.
Replies shown are marked with the day they were first read.

``POST /replies/sealed`` is the same for ``replies.js``, which derives the
lookup token and the reply secret in the browser: it carries only the lookup
token (``X-Lookup-Token``, 64 hex digits) and the CSRF token
(``X-CSRFToken``), and gets the sealed replies back as JSON
(``{"replies": [{"received_on": "YYYY-MM-DD", "envelope": <base64>}]}``),
an empty list for an unknown token as for a thread without replies. The
browser opens them; the receipt and the reply secret never leave it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass

from flask import Blueprint, Response, jsonify, render_template, request
from nacl.public import PrivateKey
from sqlalchemy import select, update

from portal import envelope, receipt
from portal.models import Reply, Thread
from portal.report import N_
from portal.source import intake, state, upload
from portal.source.i18n import translate
from portal.storage import reply_path

bp = Blueprint("replies", __name__)

REPLY_TYPE = "reprisal-reply"
BAD_RECEIPT = N_(
    "This is not a valid receipt. A receipt has thirty digits in groups of five, as it was"
    " shown when your report was sent. Check what you typed and try again."
)

BAD_TOKEN = N_(
    "The replies could not be fetched because the request was malformed. Reload the page"
    " and try again."
)


@dataclass(frozen=True)
class Shown:
    received_on: dt.date
    text: str


@bp.get("/replies")
def ask() -> tuple[str, int]:
    return _form(None), 200


def _form(problem: str | None) -> str:
    return render_template("source/replies.html", problem=problem, assets=state.current().assets)


@bp.post("/replies")
def read() -> tuple[str, int]:
    try:
        digits = receipt.normalize(request.form.get("receipt", ""))
    except receipt.InvalidReceipt:
        return _form(translate(BAD_RECEIPT)), 400
    current = state.current()
    digest = receipt.lookup_digest(current.digest_key, receipt.lookup_token(digits))
    identity = PrivateKey(receipt.reply_secret(digits))
    del digits
    with current.db.session() as session:
        thread = session.scalars(select(Thread).where(Thread.lookup_digest == digest)).first()
        rows = (
            []
            if thread is None
            else list(
                session.scalars(
                    select(Reply)
                    .where(Reply.thread_id == thread.id)
                    .order_by(Reply.received_on, Reply.id)
                )
            )
        )
        shown, opened, unreadable = [], [], 0
        for row in rows:
            text = _open(row, identity)
            if text is None:
                unreadable += 1
            else:
                shown.append(Shown(row.received_on, text))
                opened.append(row.id)
        if opened:
            today = intake.today()
            session.execute(
                update(Reply)
                .where(Reply.id.in_(opened), Reply.read_on.is_(None))
                .values(read_on=today)
            )
            session.commit()
    del identity
    if not shown and not unreadable:
        return render_template("source/replies_none.html"), 404
    page = render_template("source/replies_read.html", replies=shown, unreadable=unreadable)
    return page, 200


@bp.post("/replies/sealed")
def sealed() -> tuple[Response, int]:
    current = state.current()
    value = request.headers.get("X-Lookup-Token")
    if value is None or not upload.TOKEN.fullmatch(value):
        raise upload.Refused(400, BAD_TOKEN)
    token = bytes.fromhex(value)
    digest = receipt.lookup_digest(current.digest_key, token)
    found = []
    with current.db.session() as session:
        thread = session.scalars(select(Thread).where(Thread.lookup_digest == digest)).first()
        rows = (
            []
            if thread is None
            else session.scalars(
                select(Reply)
                .where(Reply.thread_id == thread.id)
                .order_by(Reply.received_on, Reply.id)
            ).all()
        )
        for row in rows:
            try:
                data = reply_path(current.config.data_dir, row.id).read_bytes()
            except OSError:
                continue
            found.append((row.id, row.received_on, data))
        if found:
            # Sent to whoever holds the lookup token: the server cannot know more.
            today = intake.today()
            session.execute(
                update(Reply)
                .where(Reply.id.in_([f[0] for f in found]), Reply.read_on.is_(None))
                .values(read_on=today)
            )
            session.commit()
    replies = [
        {"received_on": day.isoformat(), "envelope": base64.b64encode(data).decode()}
        for _, day, data in found
    ]
    return jsonify(replies=replies), 200


def _open(row: Reply, identity: PrivateKey) -> str | None:
    """The text of one stored reply, or ``None`` if it cannot be read or is not a reply."""
    current = state.current()
    try:
        data = reply_path(current.config.data_dir, row.id).read_bytes()
        document = json.loads(envelope.open_bytes(data, [identity]).decode("utf-8"))
    except (OSError, envelope.EnvelopeError, UnicodeDecodeError, ValueError):
        return None
    ok = (
        isinstance(document, dict)
        and document.get("type") == REPLY_TYPE
        and document.get("version") == 1
        and document.get("thread_id") == row.thread_id
        and isinstance(document.get("text"), str)
    )
    return document["text"] if ok else None
