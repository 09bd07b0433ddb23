"""``/followup``: more information or a change of consent, sent in an existing thread.

``GET /followup`` shows the form: the receipt, a free text and the four
consent questions, each at "No change" by default. With JavaScript,
``followup.js`` seals the follow-up in the browser (FORMAT.md §15.7) and
posts the envelope to ``POST /followup/sealed`` with only the lookup token
(``X-Lookup-Token``) and the CSRF token: the receipt never leaves the
browser; ``X-Attachments`` may list complete uploads (docs/UPLOADS.md),
stored in the thread in the follow-up's transaction exactly as for
``/report/sealed``. Without JavaScript, ``POST /followup/plain``
(``followup_plain``) seals it and its files on the server, only after the
explicit choice (``server_seal_consent``), deriving the lookup token and the
reply secret from the receipt for that one request. Either way it is stored
as a submission of the thread the token finds; an unknown receipt stores
nothing and gets a 404 (SECURITY.md says what that answer tells).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

from flask import Blueprint, Response, jsonify, render_template, request

from portal import followup, ratelimit, receipt, storage
from portal.envelope import Header
from portal.models import SealedBy
from portal.report import N_
from portal.source import followup_store, state, upload
from portal.source.plain import CONSENT
from portal.source.security import CSRF_FIELD, rotate_csrf
from portal.source.views import recipient_keys

bp = Blueprint("followup", __name__)

RECEIPT = "receipt"
KNOWN_NAMES = frozenset({f.name for f in followup.FIELDS} | {CSRF_FIELD, CONSENT, RECEIPT})
NO_THREAD = N_(
    "No report was found for this receipt, so nothing was sent. Check that you typed the"
    " receipt exactly as it was shown when your report was sent."
)
BAD_RECEIPT = N_(
    "This is not a valid receipt, so nothing was sent. A receipt has thirty digits in groups"
    " of five. Check what you typed."
)
UNKNOWN_FIELDS = N_(
    "The form that was sent has answers this portal does not know, so nothing was stored."
    " Check your answers below and send them again."
)
CHECK_ANSWERS = N_("Nothing was sent yet. Please check the answers marked below.")
NOT_SENT = N_("Nothing was sent yet.")
UPLOADS_GONE = N_(
    "A file sent with the follow-up was already sent with another message or was deleted, so"
    " nothing was stored. Reload the page and send the follow-up and its files again."
)
NOT_STORED = N_(
    "The portal could not store the follow-up, so nothing was kept. Please try again later."
)


def today() -> dt.date:
    """The day of arrival (UTC): the only time the server keeps."""
    return dt.datetime.now(dt.UTC).date()


def page(
    values: dict[str, list[str]] | None = None,
    problems: dict[str, str] | None = None,
    *,
    notice: str | None = None,
    consent_missing: bool = False,
    status: int = 200,
) -> tuple[str, int]:
    current = state.current()
    values = {k: v for k, v in (values or {}).items() if k != RECEIPT}  # never echoed
    page = render_template(
        "source/followup.html",
        fields=followup.FIELDS,
        values=values,
        problems=problems or {},
        notice=notice,
        consent_missing=consent_missing,
        recipient_keys=recipient_keys(current),
        fingerprints=current.fingerprints,
        assets=current.assets,
    )
    return page, status


@bp.get("/followup")
def ask() -> tuple[str, int]:
    return page()


@bp.post("/followup/sealed")
def sealed() -> tuple[Response, int]:
    current = state.current()
    token = upload.lookup_token(request.headers.get("X-Lookup-Token"))
    body = request.get_data(cache=False)
    header = upload.check_envelope(body, current.keys, current.config.max_report_bytes)
    tokens = upload.attachment_tokens(
        request.headers.get("X-Attachments"), current.config.max_files
    )
    staged = upload.claim_attachments(
        current.db, current.config, tokens, current.keys, int(time.time())
    )
    digest = receipt.lookup_digest(current.digest_key, token)
    status = store(digest, body, header, SealedBy.BROWSER, staged)
    if status == 404:
        raise upload.Refused(404, NO_THREAD)
    if status == 429:
        raise upload.Refused(429, ratelimit.THREAD_BUSY)
    if status == 409:
        raise upload.Refused(409, UPLOADS_GONE)
    if status != 201:
        raise upload.Refused(status, NOT_STORED)
    return jsonify(fingerprints=current.fingerprints), 201


def store(
    digest: bytes,
    data: bytes,
    header: Header,
    sealed_by: SealedBy,
    attachments: Sequence[storage.Staged] = (),
) -> int:
    """Store the follow-up and its attachments; 201 when stored, 404 for an unknown thread,
    409 when an upload was used meanwhile, 429 when the thread has had its submissions for
    the day, 503 on failure."""
    current = state.current()
    config = current.config
    try:
        followup_store.store(current.db, config.data_dir, digest, (data, header), sealed_by,
                             today(), per_day=config.thread_submissions_per_day,
                             attachments=attachments)  # fmt: skip
    except followup_store.NoThread:
        return 404
    except storage.UploadsGone:
        return 409
    except followup_store.ThreadBusy:
        return 429
    except storage.StorageError as err:
        followup_store.log.error("a follow-up could not be stored: %s", err)
        return 503
    rotate_csrf()
    return 201
