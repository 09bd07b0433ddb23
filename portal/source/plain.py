"""``POST /report/plain``: the form without JavaScript, sealed by the server after consent.

Without ``server_seal_consent=yes`` nothing is sealed: the form comes back,
filled in, with the explanation. With it, the server validates the answers
with ``report.from_form``, seals the document in memory (path ``server``),
stores it like a browser-sealed one and shows the receipt, once.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request

from portal import report
from portal.models import SealedBy
from portal.report import N_
from portal.source import state
from portal.source.intake import accept
from portal.source.sealing import seal_report
from portal.source.security import CSRF_FIELD
from portal.source.views import render_form

bp = Blueprint("plain", __name__)

CONSENT = "server_seal_consent"
KNOWN_NAMES = frozenset({f.name for f in report.FIELDS} | {CSRF_FIELD, CONSENT})
UNKNOWN_FIELDS = N_(
    "The form that was sent has answers this portal does not know, so nothing was stored."
    " Check your answers below and send the form again."
)
CHECK_ANSWERS = N_("Nothing was sent yet. Please check the answers marked below.")
NOT_SENT = N_("Nothing was sent yet.")


def submitted() -> dict[str, list[str]]:
    """The posted answers; line breaks as the browser's own form script would send them."""
    return {
        name: [v.replace("\r\n", "\n") for v in request.form.getlist(name)] for name in request.form
    }


@bp.post("/report/plain")
def submit() -> tuple[str, int]:
    values = submitted()
    if set(values) - KNOWN_NAMES:
        known = {k: v for k, v in values.items() if k in KNOWN_NAMES}
        return render_form(known, notice=UNKNOWN_FIELDS, status=400)
    try:
        fields, problems = report.from_form(values), {}
    except report.ReportError as err:
        fields, problems = {}, err.problems
    consent = values.get(CONSENT) == ["yes"]
    if problems or not consent:
        notice = CHECK_ANSWERS if problems else NOT_SENT
        return render_form(values, problems, notice=notice, consent_missing=not consent, status=400)
    current = state.current()
    sealed = seal_report(fields, current.keys)
    accept(sealed.envelope, sealed.header, sealed.lookup_token, sealed.reply_public_key,
           SealedBy.SERVER)  # fmt: skip
    page = render_template(
        "source/confirmation.html", receipt=sealed.receipt, fingerprints=current.fingerprints
    )
    return page, 200
