"""``/replies``: the submitter reads the team's replies with the receipt, without JavaScript.

``POST /replies`` (CSRF) normalises the receipt, derives the lookup token and
the reply secret in memory for this one request, finds the thread by the
keyed digest of the token, checks each stored reply's signature against the
desk's signing keys in the key manifest (docs/BUNDLES.md §8.6), opens each
verified reply with the reply secret and shows the texts (escaped by Jinja).
A reply whose signature does not verify (planted by someone who controls the
server or a staff login) is not opened or shown, and the page says that a
reply could not be verified. Nothing about the receipt is stored or
logged. An unknown receipt and a thread without replies get the same
neutral 404 page, so the answer never tells whether a report was made.
Replies shown are marked with the day they were first read.

``POST /replies/sealed`` is the same for ``replies.js``, which derives the
lookup token and the reply secret in the browser: it carries only the lookup
token (``X-Lookup-Token``, 64 hex digits) and the CSRF token
(``X-CSRFToken``), and gets the sealed replies back as JSON
(``{"replies": [{"received_on": "YYYY-MM-DD", "thread_id": <32 hex>,
"envelope": <base64>, "signature": <base64> or null}]}``), an empty list for an
unknown token as for a thread without replies. The browser checks each
signature against the signing keys the page embeds (``data-signing-keys``)
and opens the verified ones; the receipt and the reply secret never leave it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from dataclasses import dataclass

from flask import Blueprint, Response, jsonify, render_template, request
from nacl.public import PrivateKey
from sqlalchemy import select, update

from portal import envelope, receipt, signing
from portal.keys import KeyManifestError, SigningPublicKey, load_manifest
from portal.models import Reply, Thread
from portal.report import N_
from portal.source import intake, state, upload
from portal.source.i18n import translate
from portal.storage import reply_path

bp = Blueprint("replies", __name__)
log = logging.getLogger(__name__)

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


def signers() -> tuple[SigningPublicKey, ...]:
    """The desk's signing keys from the key manifest, read now; ``()`` if unusable.

    Read on each request, so that a rotated key applies at once; with none,
    every reply fails verification and none is shown (fail closed).
    """
    try:
        return load_manifest(state.current().config.keys_manifest).signing_keys
    except KeyManifestError as err:
        log.error("replies cannot be verified: %s. %s", err, err.hint)
        return ()


def signing_keys() -> tuple[bytes, ...]:
    """The public keys of :func:`signers`."""
    return tuple(k.public_key for k in signers())


def verified(keys: tuple[bytes, ...], thread_id: str, data: bytes, sig: bytes | None) -> bool:
    """Whether one of ``keys`` signed this reply envelope for this thread."""
    if sig is None:  # stored before migration 0005: never shown
        return False
    message = signing.reply_message(thread_id, data)
    return any(signing.verify(key, message, sig) for key in keys)


@bp.get("/replies")
def ask() -> tuple[str, int]:
    return _form(None), 200


def _form(problem: str | None) -> str:
    keys = signers()
    return render_template(
        "source/replies.html",
        problem=problem,
        assets=state.current().assets,
        signers=keys,
        signing_keys=" ".join(base64.b64encode(k.public_key).decode() for k in keys),
    )


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
        keys = signing_keys()
        shown, opened, unreadable, unverified = [], [], 0, 0
        for row in rows:
            data = _envelope(row)
            if data is not None and not verified(keys, row.thread_id, data, row.signature):
                unverified += 1  # never opened, never marked read
                continue
            text = None if data is None else _open(row, data, identity)
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
    if not shown and not unreadable and not unverified:
        return render_template("source/replies_none.html"), 404
    page = render_template(
        "source/replies_read.html", replies=shown, unreadable=unreadable, unverified=unverified
    )
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
            found.append((row, data))
        keys = signing_keys()
        # Sent to whoever holds the lookup token: the server cannot know more. Only the
        # replies the browser will show (their signatures verify) count as read.
        read = [row.id for row, data in found if verified(keys, row.thread_id, data, row.signature)]
        if read:
            today = intake.today()
            session.execute(
                update(Reply)
                .where(Reply.id.in_(read), Reply.read_on.is_(None))
                .values(read_on=today)
            )
        replies = [_sealed_entry(row, data) for row, data in found]
        session.commit()
    return jsonify(replies=replies), 200


def _sealed_entry(row: Reply, data: bytes) -> dict[str, str | None]:
    """One reply as ``replies.js`` gets it: the browser checks the signature itself."""
    sig = None if row.signature is None else base64.b64encode(row.signature).decode()
    return {
        "received_on": row.received_on.isoformat(),
        "thread_id": row.thread_id,
        "envelope": base64.b64encode(data).decode(),
        "signature": sig,
    }


def _envelope(row: Reply) -> bytes | None:
    """The stored envelope of one reply, or ``None`` if it cannot be read."""
    try:
        return reply_path(state.current().config.data_dir, row.id).read_bytes()
    except OSError:
        return None


def _open(row: Reply, data: bytes, identity: PrivateKey) -> str | None:
    """The text of one verified reply, or ``None`` if it does not open or is not a reply."""
    try:
        document = json.loads(envelope.open_bytes(data, [identity]).decode("utf-8"))
    except (envelope.EnvelopeError, UnicodeDecodeError, ValueError):
        return None
    ok = (
        isinstance(document, dict)
        and document.get("type") == REPLY_TYPE
        and document.get("version") == 1
        and document.get("thread_id") == row.thread_id
        and isinstance(document.get("text"), str)
    )
    return document["text"] if ok else None
