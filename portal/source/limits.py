"""Request limits: bodies are bounded and form data is parsed in memory, never on disk.

Werkzeug spools a large multipart upload to a temporary file; a report
posted without JavaScript is plaintext, so that must never happen. The
request class below refuses any file part before a byte of it is read, the
form size limit equals the body limit (so a form is parsed in memory or
refused), and each endpoint accepts its own content types only. The
multipart forms with files, ``/report/plain`` and ``/followup/plain``, are
never given to Werkzeug's parser: ``portal.source.multipart`` reads it as it streams, within the
limits below, checked from ``Content-Length`` before the body is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, NoReturn

from flask import Flask, Request, abort, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import UnsupportedMediaType

from portal import quota, uploads
from portal.config import Config
from portal.report import N_
from portal.source import multipart
from portal.source.state import SourceState
from portal.source.upload import Refused

FORM = "application/x-www-form-urlencoded"
OCTETS = "application/octet-stream"
# The content types of each endpoint; anything else is refused before it is parsed.
CONTENT_TYPES = {
    "plain.submit": (FORM, multipart.MULTIPART),
    "sealed.submit": (OCTETS,),
    "uploads.append": (OCTETS,),
    "followup.plain": (FORM, multipart.MULTIPART),
    "followup.sealed": (OCTETS,),
}
MAX_FORM_PARTS = 200  # far more than the form's fields and choices
FIELD_OVERHEAD = 512  # a text part's boundary and headers
QUOTA_FULL = N_(
    "The portal's storage is full at the moment, so it cannot accept these files, and nothing"
    " was stored. Try again in a day or two, or send smaller files."
)
DISK_FULL = N_(
    "The portal's disk is nearly full, so it cannot accept these files, and nothing was"
    " stored. Try again in a day or two, or send smaller files."
)
# Said by both no-JavaScript forms, the report's and the follow-up's.
NOT_STORED = N_(
    "The portal could not store what you sent, so nothing was kept. Please try again later."
)


@dataclass(frozen=True)
class PlainLimits:
    body: int  # the largest multipart body
    form: multipart.Limits


class MemoryOnlyRequest(Request):
    """A request whose form parser can never write to a temporary file."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        refuse_files()


def refuse_files() -> NoReturn:
    raise UnsupportedMediaType("files are not accepted here")


def check_content_type() -> None:
    """Refuse a POST whose content type is not its endpoint's, before any parsing."""
    expected = CONTENT_TYPES.get(request.endpoint or "")
    if expected is not None and request.mimetype not in expected:
        abort(415)


def plain_limits(config: Config) -> PlainLimits:
    """The limits of the no-JavaScript form: its answers, files and parts, and its whole body."""
    parts = MAX_FORM_PARTS + config.max_files
    form = multipart.Limits(
        text_bytes=config.max_report_bytes,
        parts=parts,
        files=config.max_files,
        file_bytes=config.max_file_bytes,
        total_bytes=config.max_attachments_bytes,
    )
    overhead = config.max_files * multipart.PART_OVERHEAD + MAX_FORM_PARTS * FIELD_OVERHEAD
    body = config.max_report_bytes + config.max_attachments_bytes + overhead
    return PlainLimits(body, form)


def check_space(current: SourceState, length: int) -> None:
    """Refuse (507) a no-JavaScript form of ``length`` bytes that might not fit, before reading it.

    Its envelopes take at most 1.04 times its length plus their headers; while a file is
    sealed, its encrypted spool takes as much again (on disk only, not in the quota).
    """
    config, keys = current.config, len(current.keys)
    limits = quota.limits(config, keys)
    needed = quota.allegation_bound(config.max_files + 1, keys, length)
    try:
        with current.db.session() as session:
            promised, to_come = uploads.reserved(session)
            spool = min(length, config.max_file_bytes)
            quota.check(session, config.data_dir, needed, limits, promised, to_come + spool)
    except quota.NoSpace as err:
        raise Refused(507, QUOTA_FULL if err.reason == "quota" else DISK_FULL) from None
    except SQLAlchemyError:
        raise Refused(503, NOT_STORED) from None


def init(app: Flask, max_bytes: int) -> None:
    """Bound every request body by ``max_bytes`` and keep form parsing in memory."""
    app.request_class = MemoryOnlyRequest
    app.config.update(
        MAX_CONTENT_LENGTH=max_bytes,
        MAX_FORM_MEMORY_SIZE=max_bytes,
        MAX_FORM_PARTS=MAX_FORM_PARTS,
    )
    app.before_request(check_content_type)
