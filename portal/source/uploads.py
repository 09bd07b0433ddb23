"""``/uploads``: the resumable upload of browser-sealed attachments (see docs/UPLOADS.md).

``POST /uploads`` (``Upload-Length``) starts one, ``PATCH /uploads/<token>``
(``Upload-Offset``, a body of at most ``MAX_CHUNK`` bytes) adds a chunk,
``GET`` says how far it got, ``DELETE`` removes it. Every answer is JSON;
an error is ``{"error": message}`` with, where the client needs it, the
committed ``"offset"`` to carry on from. CSRF applies as to every POST,
PATCH and DELETE. The storage itself is ``portal.uploads``.
"""

from __future__ import annotations

import errno
import logging
import re
import time

from flask import Blueprint, Response, jsonify, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from portal import quota, ratelimit, uploads
from portal.config import Config
from portal.report import N_
from portal.source import state
from portal.source.errors import CSRF_EXPIRED, MESSAGES
from portal.source.i18n import translate
from portal.source.upload import Refused

log = logging.getLogger(__name__)
bp = Blueprint("uploads", __name__)

NUMBER = re.compile(r"[0-9]{1,19}")
BAD_LENGTH = N_(
    "The file could not be sent because the upload did not say its size. Reload the page"
    " and try again."
)
NOT_EMPTY = N_("The upload could not start because its request had a body. Reload the page.")
TOO_LARGE = N_(
    "This file is larger than this portal accepts, so nothing of it was stored. Send a"
    " smaller file, or split it into parts."
)
TOO_SMALL = N_(
    "The upload's size cannot be that of an encrypted file, so nothing was stored. Reload"
    " the page and try again."
)
QUOTA_FULL = N_(
    "The portal's storage is full at the moment, so it cannot accept this file, and nothing"
    " of it was stored. Try again in a day or two, or send a smaller file."
)
DISK_FULL = N_(
    "The portal's disk is nearly full, so it cannot accept this file, and nothing of it was"
    " stored. Try again in a day or two, or send a smaller file."
)
UNKNOWN = N_(
    "This upload is not known to the portal: it expired, was deleted or was already sent"
    " with a report. Choose the file again to send it from the start."
)
BAD_OFFSET = N_(
    "A part of the file could not be sent because the request did not say where it goes."
    " Reload the page and try again."
)
CONFLICT = N_(
    "This part of the file does not start where the portal expects the next part. Carry on"
    " from the offset given."
)
CHUNK_TOO_LARGE = N_(
    "This part of the file runs past the end the upload declared, or is too long, so it was"
    " not stored. Carry on from the offset given."
)
EMPTY_CHUNK = N_("A part of the file arrived empty, so it was not stored. Send it again.")
INCOMPLETE = N_(
    "A part of the file arrived incomplete, so none of it was kept. Carry on from the offset given."
)
NO_LENGTH = N_(
    "A part of the file arrived without its length, so it was not stored. Reload the page"
    " and try again."
)
REJECTED = {
    "damaged": N_(
        "The encrypted file is damaged, so the portal deleted it. Choose the file again to"
        " send it from the start."
    ),
    "path": N_(
        "The file does not say it was encrypted in your browser, so the portal deleted it."
        " Reload the page and send it again."
    ),
    "keys": N_(
        "The file was not encrypted to exactly the portal's current keys, so the portal"
        " deleted it. Reload the page to get the current keys and send it again."
    ),
    "length": N_(
        "The encrypted file does not have the size its upload declared, so the portal"
        " deleted it. Choose the file again to send it from the start."
    ),
}
NOT_STORED = N_(
    "The portal could not store this part of the file, so it was not kept. Try again later."
)


class UploadRefused(Refused):
    """A refusal that tells the client where to carry on (``offset``), when that helps."""

    def __init__(self, status: int, message: str, offset: int | None = None) -> None:
        super().__init__(status, message)
        self.offset = offset


def answer(status: int, message: str, offset: int | None = None) -> Response:
    """The JSON error answer: the message in the request's language, and the offset."""
    body: dict[str, object] = {"error": translate(message)}
    if offset is not None:
        body["offset"] = offset
    response = jsonify(body)
    response.status_code = status
    return response


@bp.errorhandler(Refused)
def refused(err: Refused) -> Response:
    return answer(err.status, err.message, getattr(err, "offset", None))


@bp.errorhandler(HTTPException)
def http_error(err: HTTPException) -> Response:
    if isinstance(err, CSRFError):
        return answer(400, CSRF_EXPIRED)
    status = err.code or 500
    return answer(status, MESSAGES.get(status, MESSAGES[400 if status < 500 else 500]))


def form_limits(config: Config) -> dict[str, int]:
    """The limits the form states and its script checks before sending anything."""
    return {
        "max_files": config.max_files,
        "max_file_bytes": config.max_file_bytes,
        "max_total_bytes": config.max_attachments_bytes,
        "max_file_mib": config.max_file_bytes >> 20,
        "max_total_mib": config.max_attachments_bytes >> 20,
    }


def now() -> int:
    return int(time.time())


def number(name: str, problem: str) -> int:
    """A header holding a whole number of bytes (plain decimal digits only)."""
    value = request.headers.get(name, "")
    if not NUMBER.fullmatch(value):
        raise UploadRefused(400, problem)
    return int(value)


def space_error(err: quota.NoSpace) -> UploadRefused:
    return UploadRefused(507, QUOTA_FULL if err.reason == "quota" else DISK_FULL)


@bp.post("/uploads")
@ratelimit.limited("uploads")  # starting an upload, not each chunk: see portal.ratelimit
def create() -> tuple[Response, int]:
    current = state.current()
    length = number("Upload-Length", BAD_LENGTH)
    if request.content_length:
        raise UploadRefused(400, NOT_EMPTY)
    if length < quota.envelope_size(0, len(current.keys)):
        raise UploadRefused(400, TOO_SMALL)
    limits = quota.limits(current.config, len(current.keys))
    try:
        token = uploads.create(current.db, current.config.data_dir, length, limits, now())
    except uploads.TooLarge:
        raise UploadRefused(413, TOO_LARGE) from None
    except quota.NoSpace as err:
        raise space_error(err) from None
    except OSError as err:
        raise storage_error(err) from None
    body = {"token": token, "offset": 0, "length": length, "max_chunk": uploads.MAX_CHUNK}
    return jsonify(body), 201


@bp.patch("/uploads/<token>")
def append(token: str) -> Response:
    current = state.current()
    at = number("Upload-Offset", BAD_OFFSET)
    size = request.content_length
    if size is None:
        raise UploadRefused(411, NO_LENGTH)
    key_ids = [k.key_id for k in current.keys]
    body = (request.stream.read, size)
    try:
        done = uploads.append(current.db, current.config.data_dir, token, at, body, key_ids, now())
    except uploads.UploadError as err:
        raise chunk_error(err, at) from None
    except OSError as err:
        raise storage_error(err, at) from None
    result: dict[str, object] = {"offset": done.offset}
    if done.complete:
        result["complete"] = True
    return jsonify(result)


def chunk_error(err: uploads.UploadError, at: int) -> UploadRefused:
    """The answer to a chunk that was not stored (``at`` is where the client should resume)."""
    if isinstance(err, uploads.OffsetMismatch):
        return UploadRefused(409, CONFLICT, err.committed)
    if isinstance(err, uploads.TooLarge):
        return UploadRefused(413, CHUNK_TOO_LARGE, at)
    if isinstance(err, uploads.BadChunk):
        return UploadRefused(400, INCOMPLETE if err.incomplete else EMPTY_CHUNK, at)
    if isinstance(err, uploads.Rejected):
        return UploadRefused(400, REJECTED[err.reason])
    return UploadRefused(404, UNKNOWN)


def storage_error(err: OSError, at: int | None = None) -> UploadRefused:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return UploadRefused(507, DISK_FULL, at)
    log.error("an upload could not be written: %s", err.strerror)
    return UploadRefused(503, NOT_STORED, at)


@bp.get("/uploads/<token>")
def status(token: str) -> Response:
    current = state.current()
    try:
        found = uploads.status(current.db, token, now())
    except uploads.UnknownUpload:
        raise UploadRefused(404, UNKNOWN) from None
    return jsonify(offset=found.offset, length=found.length, complete=found.complete)


@bp.delete("/uploads/<token>")
def remove(token: str) -> tuple[str, int]:
    current = state.current()
    try:
        uploads.remove(current.db, current.config.data_dir, token, now())
    except uploads.UnknownUpload:
        raise UploadRefused(404, UNKNOWN) from None
    return "", 204
