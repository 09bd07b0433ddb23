"""Checks on a browser-sealed upload: its headers and its envelope, without any key.

Each check raises :class:`Refused` with the HTTP status and a message a
person can act on (marked for translation, translated when the response is
made). The server cannot open an envelope; it checks that it is a whole,
well-formed v1 envelope sealed by a browser to exactly the active keys.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Sequence
from pathlib import Path

from portal import envelope, quota, uploads
from portal.config import Config
from portal.db import Database
from portal.envelope import Header, SealPath
from portal.keys import RecipientKey
from portal.models import SealedBy
from portal.report import N_
from portal.storage import Staged

TOKEN = re.compile(r"[0-9a-f]{64}")
ATTACHMENT_TOKENS = re.compile(r"[0-9a-f]{64}( [0-9a-f]{64})*")

BAD_TOKEN = N_(
    "The report could not be sent because its lookup token is missing or malformed."
    " Reload the page and try again."
)
BAD_REPLY_KEY = N_(
    "The report could not be sent because its reply key is missing or malformed."
    " Reload the page and try again."
)
EMPTY = N_("The report arrived empty, so nothing was stored. Send it again.")
DAMAGED = N_(
    "The encrypted report is damaged or incomplete, so nothing was stored."
    " Check your connection and send it again."
)
WRONG_PATH = N_(
    "The report does not say it was sealed in your browser, so nothing was stored."
    " Reload the page and send it again."
)
WRONG_KEYS = N_(
    "The report was not sealed to exactly the portal's current keys, so nothing was stored."
    " Reload the page to get the current keys and send it again."
)
TOO_LARGE = N_("The report is larger than this portal accepts, so nothing was stored.")
BAD_ATTACHMENTS = N_(
    "The list of files sent with the report is malformed, so nothing was stored. Reload the"
    " page and try again."
)
TOO_MANY_FILES = N_(
    "The report has more files, or larger files in all, than this portal accepts with one"
    " report, so nothing was stored. Remove some files and send it again."
)
UNKNOWN_ATTACHMENT = N_(
    "A file sent with the report is not known to the portal: it expired, was deleted or was"
    " already sent with a report. Nothing was stored. Choose the file again and send it."
)
UNFINISHED_ATTACHMENT = N_(
    "A file sent with the report has not finished uploading, so nothing was stored. Wait"
    " until every file is uploaded and send the report again."
)


class Refused(Exception):
    """The upload is refused; nothing is stored. ``message`` is marked for translation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def lookup_token(value: str | None) -> bytes:
    """The 32-byte lookup token from its header: exactly 64 lower-case hex digits."""
    if value is None or not TOKEN.fullmatch(value):
        raise Refused(400, BAD_TOKEN)
    return bytes.fromhex(value)


def reply_key(value: str | None) -> bytes:
    """The reply public key from its header: canonical base64 of a usable X25519 key."""
    try:
        raw = base64.b64decode(value or "", validate=True)
        if base64.b64encode(raw).decode() != value:
            raise ValueError("not canonical base64")
        envelope.check_public_key(raw)
    except (binascii.Error, ValueError):
        raise Refused(400, BAD_REPLY_KEY) from None
    return raw


def check_envelope(body: bytes, keys: Sequence[RecipientKey], max_bytes: int) -> Header:
    """The header of ``body`` once it is a whole envelope, from a browser, to exactly ``keys``."""
    if not body:
        raise Refused(400, EMPTY)
    if len(body) > max_bytes:
        raise Refused(413, TOO_LARGE)
    try:
        header = envelope.parse_header(body)
        if header.padded_size > max_bytes:
            raise Refused(413, TOO_LARGE)
        envelope.inspect(io.BytesIO(body))
    except envelope.EnvelopeError:
        raise Refused(400, DAMAGED) from None
    if header.path is not SealPath.BROWSER:
        raise Refused(400, WRONG_PATH)
    if sorted(header.key_ids) != sorted(k.key_id for k in keys):
        raise Refused(400, WRONG_KEYS)
    return header


def attachment_tokens(value: str | None, max_files: int) -> list[str]:
    """The upload tokens of ``X-Attachments``: distinct, single spaces, at most ``max_files``."""
    if value is None:
        return []
    if not ATTACHMENT_TOKENS.fullmatch(value):
        raise Refused(400, BAD_ATTACHMENTS)
    tokens = value.split(" ")
    if len(set(tokens)) != len(tokens):
        raise Refused(400, BAD_ATTACHMENTS)
    if len(tokens) > max_files:
        raise Refused(413, TOO_MANY_FILES)
    return tokens


def claim_attachments(
    db: Database, config: Config, tokens: Sequence[str], keys: Sequence[RecipientKey], now: int
) -> list[Staged]:
    """The complete uploads of ``tokens``, checked again to the current keys, ready to store.

    Nothing changes here: a refusal leaves every upload as it was, for a retry.
    """
    try:
        claimed = uploads.claim(db, config.data_dir, tokens, now)
    except uploads.OffsetMismatch:
        raise Refused(409, UNFINISHED_ATTACHMENT) from None
    except uploads.UploadError:
        raise Refused(400, UNKNOWN_ATTACHMENT) from None
    key_ids = sorted(k.key_id for k in keys)
    for item in claimed:
        if item.header.path is not SealPath.BROWSER:
            raise Refused(400, WRONG_PATH)
        if sorted(item.header.key_ids) != key_ids:
            raise Refused(400, WRONG_KEYS)
    total = sum(item.header.total_size for item in claimed)
    if total > quota.allegation_bound(len(claimed), len(keys), config.max_attachments_bytes):
        raise Refused(413, TOO_MANY_FILES)
    return [_staged(item.path, item.header, item.id) for item in claimed]


def _staged(path: Path, header: Header, upload_id: str) -> Staged:
    return Staged(path, header, SealedBy.BROWSER, upload_id)
