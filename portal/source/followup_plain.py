"""``POST /followup/plain``: a follow-up without JavaScript, sealed by the server after consent.

The page's form is ``multipart/form-data`` (it has the file input) and is
read as it streams (``formstream``), exactly as ``/report/plain``: when the
first file part begins, :func:`review` checks the CSRF token, the answers,
the receipt and the consent, finds the thread and its day's allowance, all
before a byte of any file is kept; each file is then sealed through an
encrypted spool (path ``server``); the follow-up document lists the files,
is sealed in memory and stored with them in one transaction. An unknown
receipt, a busy thread or a missing consent brings the form back filled in
(never the receipt). The lookup token and the reply secret are derived from
the receipt for this one request and live only in its memory. A URL-encoded
form (no files) is accepted too.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import render_template

from portal import attachment, envelope, followup, ratelimit, receipt, report, storage
from portal.envelope import SealPath
from portal.models import SealedBy
from portal.source import followup as pages
from portal.source import followup_store, formstream, state
from portal.source.followup import (
    BAD_RECEIPT,
    CHECK_ANSWERS,
    KNOWN_NAMES,
    NO_THREAD,
    NOT_SENT,
    NOT_STORED,
    RECEIPT,
    UNKNOWN_FIELDS,
    bp,
    page,
    store,
)
from portal.source.i18n import translate
from portal.source.plain import AGAIN_WITH_FILES, CONSENT
from portal.source.plain import UNKNOWN_FIELDS as UNKNOWN_WITH_FILES
from portal.source.sealing import serialise
from portal.source.security import csrf
from portal.source.upload import Refused

# The notices again, for a form that had files: a browser cannot fill in a file input again.
WITH_FILES = {
    UNKNOWN_FIELDS: AGAIN_WITH_FILES[UNKNOWN_WITH_FILES],
    CHECK_ANSWERS: AGAIN_WITH_FILES[CHECK_ANSWERS],
    NOT_SENT: AGAIN_WITH_FILES[NOT_SENT],
}


@dataclass(frozen=True)
class Checked:
    """A follow-up ready to seal: its fields, its thread's lookup digest and reply secret."""

    values: dict[str, list[str]]  # for the form, should the follow-up still not be stored
    fields: dict[str, Any]
    digest: bytes
    reply_secret: bytes


@bp.post("/followup/plain")
def plain() -> tuple[str, int]:
    unknown = functools.partial(page, notice=WITH_FILES[UNKNOWN_FIELDS], status=400)
    return formstream.respond(review, finish, unknown)


def review(raw: Mapping[str, Sequence[str]], files_sent: bool) -> Checked:
    """The checked follow-up, or ``FormAgain`` (or ``CSRFError``) before anything is kept."""
    formstream.check_csrf(raw)
    values = formstream.normalised(raw)
    say = WITH_FILES.__getitem__ if files_sent else str
    if set(values) - KNOWN_NAMES:
        known = {k: v for k, v in values.items() if k in KNOWN_NAMES}
        raise formstream.FormAgain(page(known, notice=say(UNKNOWN_FIELDS), status=400))
    fields, digits, problems = _read(values)
    consent = values.get(CONSENT) == ["yes"]
    if problems or not consent:
        notice = say(CHECK_ANSWERS if problems else NOT_SENT)
        again = page(values, problems, notice=notice, consent_missing=not consent, status=400)
        raise formstream.FormAgain(again)
    current = state.current()
    digest = receipt.lookup_digest(current.digest_key, receipt.lookup_token(digits))
    _check_thread(digest, values, say(CHECK_ANSWERS))
    return Checked(values, fields, digest, receipt.reply_secret(digits))


def _read(values: dict[str, list[str]]) -> tuple[dict[str, Any], str, dict[str, str]]:
    """The follow-up's fields, the receipt's digits and the problems with either."""
    problems: dict[str, str] = {}
    try:
        fields = followup.from_form(values)
    except report.ReportError as err:
        fields, problems = {}, err.problems
    try:
        digits = receipt.normalize((values.get(RECEIPT) or [""])[0])
    except receipt.InvalidReceipt:
        digits, problems[RECEIPT] = "", BAD_RECEIPT
    return fields, digits, problems


def _check_thread(digest: bytes, values: dict[str, list[str]], notice: str) -> None:
    """The form again when no thread has ``digest`` or when it has had its day's follow-ups."""
    current = state.current()
    try:
        thread = followup_store.thread_id(current.db, digest)
        followup_store.check_day(
            current.db, thread, pages.today(), current.config.thread_submissions_per_day
        )
    except followup_store.NoThread:
        raise formstream.FormAgain(
            page(values, {RECEIPT: NO_THREAD}, notice=notice, status=404)
        ) from None
    except followup_store.ThreadBusy:
        raise formstream.FormAgain(page(values, notice=ratelimit.THREAD_BUSY, status=429)) from None
    except storage.StorageError:
        raise Refused(503, NOT_STORED) from None


def finish(
    checked: Checked, files: Sequence[tuple[storage.Staged, attachment.Metadata]]
) -> tuple[str, int]:
    """Seal the follow-up (listing ``files``) in memory and store it with them."""
    current = state.current()
    keys = [k.public_key for k in current.keys]
    document = followup.document(checked.fields, checked.reply_secret, keys, sealed_by="server",
                                 attachments=[meta for _, meta in files])  # fmt: skip
    sealed = envelope.seal(serialise(document), keys, SealPath.SERVER)
    staged = [s for s, _ in files]
    status = store(checked.digest, sealed, envelope.parse_header(sealed), SealedBy.SERVER, staged)
    if status == 404:  # the thread was there a moment ago: purged meanwhile
        notice = WITH_FILES[CHECK_ANSWERS] if files else CHECK_ANSWERS
        return page(checked.values, {RECEIPT: NO_THREAD}, notice=notice, status=404)
    if status == 429:
        return page(checked.values, notice=ratelimit.THREAD_BUSY, status=429)
    if status != 201:
        message = translate(NOT_STORED)
        return render_template("source/error.html", status=status, message=message), status
    sent = render_template("source/followup_sent.html", fingerprints=current.fingerprints)
    return sent, 200


csrf.exempt(plain)  # checked by ``review``, once the answers have arrived
