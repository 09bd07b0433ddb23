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

from portal import envelope
from portal.envelope import Header, SealPath
from portal.keys import RecipientKey
from portal.report import N_

TOKEN = re.compile(r"[0-9a-f]{64}")

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
