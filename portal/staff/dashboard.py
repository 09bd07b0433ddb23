"""The page after login: counts and figures only, no submitter data; the export download and
the return bundle upload."""

from __future__ import annotations

import datetime as dt
import logging
import tempfile

from flask import Blueprint, Response, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.wsgi import wrap_file

from portal import export, purge, returnbundle, storage
from portal.bundle import BundleError, ExportError
from portal.keys import KeyManifestError, load_manifest
from portal.staff import figures, state

bp = Blueprint("dashboard", __name__)
log = logging.getLogger(__name__)

EXPORT_FAILED = (
    "The export bundle could not be written, so nothing was downloaded. An envelope file"
    " is missing or damaged: ask the operator to check the server's data directory."
)


# A return bundle holds ids and digests only (about 110 bytes an item), never ciphertext or
# plaintext; the multipart wrapping adds little. Larger uploads are refused with a 413.
MAX_RETURN_UPLOAD = returnbundle.MAX_RETURN + 64 * 1024
REFUSED = "The return bundle was refused and nothing was deleted: {}."
NO_FILE = "Choose the return bundle file written by portal-desk return, then upload it."
NO_SIGNING_KEY = (
    "Return bundles cannot be accepted and nothing was changed: this server has no usable"
    " signing key for the desk ({}), so it cannot tell a bundle written on the desk from a"
    " forged one. Ask the operator to add the desk's signing key (made with portal-desk"
    ' keygen --signing) to "signing_keys" in the key manifest, as keys/README.md says.'
)


def _page(
    problem: str | None = None, status: int = 200, result: purge.Applied | None = None
) -> ResponseReturnValue:
    current = state.current()
    shown = figures.gather(current.db, current.config.data_dir)
    page = render_template("staff/dashboard.html", figures=shown, problem=problem, result=result)
    return page, status


def upload_limit() -> None:
    """Let the return bundle upload be larger than the other forms (before CSRF reads it)."""
    if request.endpoint == "dashboard.upload_return":
        request.max_content_length = MAX_RETURN_UPLOAD


@bp.get("/")
def home() -> ResponseReturnValue:
    return _page()


@bp.post("/export")
def download_export() -> ResponseReturnValue:
    """The export bundle of every stored submission, as an attachment.

    The bundle is written whole to an unnamed temporary file in the data
    directory first (ciphertext and the manifest only, the same bytes the
    server stores anyway; it vanishes when closed), so that a missing or
    damaged envelope gives an error page instead of a cut-off download, and
    memory does not grow with the envelopes. Nothing is deleted; the
    submissions are marked with the day of the export.
    """
    current = state.current()
    data_dir = current.config.data_dir
    day = dt.datetime.now(dt.UTC).date()
    spool = tempfile.TemporaryFile(dir=storage.prepare(data_dir))  # noqa: SIM115 - handed to the response
    try:
        items = export.export_to(current.db, data_dir, spool, day, mask_key=current.mask_key)
        spool.flush()
        size = spool.tell()
        spool.seek(0)
    except ExportError as err:
        spool.close()
        log.error("an export failed: %s", err)  # names no submitter, only the server's fault
        return _page(EXPORT_FAILED, 500)
    except BaseException:
        spool.close()
        raise
    export.mark_exported(current.db, items, day)
    body = wrap_file(request.environ, spool)
    response = Response(body, mimetype="application/x-tar", direct_passthrough=True)
    response.content_length = size
    response.headers["Content-Disposition"] = (
        f'attachment; filename="reprisals-export-{day.isoformat()}.tar"'
    )
    return response


@bp.post("/return")
def upload_return() -> ResponseReturnValue:
    """Apply a return bundle: check its signature and the whole of it, then delete exactly
    what it acknowledges."""
    current = state.current()
    try:
        # Read now, not at start-up, so that a rotated signing key applies at once.
        signers = load_manifest(current.config.keys_manifest).require_signing()
    except KeyManifestError as err:
        log.error("return bundles are refused: %s. %s", err, err.hint)
        return _page(NO_SIGNING_KEY.format(str(err).rstrip(".")), 503)
    upload = request.files.get("bundle")
    if upload is None or not upload.filename:
        return _page(NO_FILE, 400)
    data = upload.stream.read(MAX_RETURN_UPLOAD + 1)
    if len(data) > MAX_RETURN_UPLOAD:
        return _page(REFUSED.format("the file is larger than any return bundle"), 413)
    try:
        returned = returnbundle.parse(data, [k.public_key for k in signers])
    except BundleError as err:
        problem = REFUSED.format(str(err).rstrip("."))
        if isinstance(err, returnbundle.BadSignature):
            problem += " " + err.hint
        return _page(problem, 400)
    try:
        applied = purge.apply(
            current.db, current.config.data_dir, returned, mask_key=current.mask_key
        )
    except purge.ReturnRefused as err:
        return _page(str(err), 409)
    return _page(result=applied)
