"""Request limits: bodies are bounded and form data is parsed in memory, never on disk.

Werkzeug spools a large multipart upload to a temporary file; a report
posted without JavaScript is plaintext, so that must never happen. The
request class below refuses any file part before a byte of it is read, the
form size limit equals the body limit (so a form is parsed in memory or
refused), and each endpoint accepts one content type only.
"""

from __future__ import annotations

from typing import IO, NoReturn

from flask import Flask, Request, abort, request
from werkzeug.exceptions import UnsupportedMediaType

FORM = "application/x-www-form-urlencoded"
OCTETS = "application/octet-stream"
# One content type per endpoint; anything else is refused before it is parsed.
CONTENT_TYPES = {"plain.submit": FORM, "sealed.submit": OCTETS, "uploads.append": OCTETS}
MAX_FORM_PARTS = 200  # far more than the form's fields and choices


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
    if expected is not None and request.mimetype != expected:
        abort(415)


def init(app: Flask, max_bytes: int) -> None:
    """Bound every request body by ``max_bytes`` and keep form parsing in memory."""
    app.request_class = MemoryOnlyRequest
    app.config.update(
        MAX_CONTENT_LENGTH=max_bytes,
        MAX_FORM_MEMORY_SIZE=max_bytes,
        MAX_FORM_PARTS=MAX_FORM_PARTS,
    )
    app.before_request(check_content_type)
