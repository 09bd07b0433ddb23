"""``POST /report/plain``: the form without JavaScript, sealed by the server after consent.

Without ``server_seal_consent=yes`` nothing is sealed: the form comes back,
filled in, with the explanation. With it, the server validates the answers
with ``report.from_form``, seals the document in memory (path ``server``),
stores it like a browser-sealed one and shows the receipt, once.

The form is ``multipart/form-data`` (it has a file input) and is read as
it streams in (``multipart``): the answers, the CSRF token and the consent
are checked when the first file part begins, before any file byte is
kept; each file is sealed through an encrypted spool; the report lists the
files, and everything is stored in one transaction. Limits, quota and free
space are checked from ``Content-Length`` before the body is read. The
CSRF check is this view's own (Flask-WTF's would parse the whole form
first), with the same message. A URL-encoded form (no files) is accepted too.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Blueprint, render_template

from portal import attachment, report
from portal.models import SealedBy
from portal.report import N_
from portal.source import formstream, state
from portal.source.intake import accept
from portal.source.sealing import seal_report
from portal.source.security import CSRF_FIELD, csrf
from portal.source.views import render_form
from portal.storage import Staged

bp = Blueprint("plain", __name__)

CONSENT = "server_seal_consent"
KNOWN_NAMES = frozenset({f.name for f in report.FIELDS} | {CSRF_FIELD, CONSENT})
UNKNOWN_FIELDS = N_(
    "The form that was sent has answers this portal does not know, so nothing was stored."
    " Check your answers below and send the form again."
)
CHECK_ANSWERS = N_("Nothing was sent yet. Please check the answers marked below.")
NOT_SENT = N_("Nothing was sent yet.")
# The same, for the form with its file input: a browser cannot fill that in again.
AGAIN_WITH_FILES = {
    UNKNOWN_FIELDS: N_(
        "The form that was sent has answers this portal does not know, so nothing was stored."
        " Check your answers below, choose your files again (they were not kept) and send the"
        " form again."
    ),
    CHECK_ANSWERS: N_(
        "Nothing was sent yet. Please check the answers marked below, and choose your files"
        " again: they were not kept."
    ),
    NOT_SENT: N_(
        "Nothing was sent yet. If you chose files, choose them again: they were not kept."
    ),
}


def review(raw: Mapping[str, Sequence[str]], files_sent: bool) -> dict[str, Any]:
    """The checked fields, or :class:`FormAgain` (or ``CSRFError``) before anything is kept."""
    formstream.check_csrf(raw)
    values = formstream.normalised(raw)
    say = AGAIN_WITH_FILES.get if files_sent else str
    if set(values) - KNOWN_NAMES:
        known = {k: v for k, v in values.items() if k in KNOWN_NAMES}
        raise formstream.FormAgain(render_form(known, notice=say(UNKNOWN_FIELDS), status=400))
    try:
        fields, problems = report.from_form(values), {}
    except report.ReportError as err:
        fields, problems = {}, err.problems
    consent = values.get(CONSENT) == ["yes"]
    if problems or not consent:
        notice = say(CHECK_ANSWERS if problems else NOT_SENT)
        raise formstream.FormAgain(render_form(values, problems, notice=notice,
                                    consent_missing=not consent, status=400))  # fmt: skip
    return fields


@bp.post("/report/plain")
def submit() -> tuple[str, int]:
    unknown = functools.partial(render_form, notice=AGAIN_WITH_FILES[UNKNOWN_FIELDS], status=400)
    return formstream.respond(review, finish, unknown)


def finish(
    fields: Mapping[str, Any], files: Sequence[tuple[Staged, attachment.Metadata]]
) -> tuple[str, int]:
    """Seal the report (listing ``files``), store it with them, and show the receipt."""
    current = state.current()
    listed = [meta.listing() for _, meta in files]
    sealed = seal_report(fields, current.keys, listed)
    accept(sealed.envelope, sealed.header, sealed.lookup_token, sealed.reply_public_key,
           SealedBy.SERVER, [staged for staged, _ in files])  # fmt: skip
    page = render_template(
        "source/confirmation.html", receipt=sealed.receipt, fingerprints=current.fingerprints
    )
    return page, 200


csrf.exempt(submit)  # checked by ``review``, once the answers have arrived
