"""The submitter's receipt and the values derived from it.

A receipt is 30 decimal digits shown in six groups of five: 29 uniformly
random digits (96.3 bits) and a Damm check digit that catches every single
wrong digit and every swap of two adjacent digits. Digits are language-
neutral; any Unicode decimal digit (Arabic-Indic, Devanagari, ...) is read
as its ASCII value, and spaces and hyphens are ignored.

From the 30 ASCII digits, HKDF-SHA256 (no salt) derives, with one purpose
string each: the *lookup token* the browser sends to find its thread, and
the *reply secret*, an X25519 secret key whose public half the server keeps
so that staff can seal replies only the submitter can read. The server
keeps only a keyed digest of the lookup token, never the token or receipt.
``envelope.js`` implements the same derivations; ``docs/FORMAT.md`` §14
specifies them and ``tests/vectors/v1/receipts.json`` holds known answers.
"""

from __future__ import annotations

import hmac
import os
import unicodedata

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl import bindings

from portal.envelope import Random

RANDOM_DIGITS = 29
LENGTH = RANDOM_DIGITS + 1
GROUP = 5
LOOKUP_INFO = b"reprisals-portal/v1 receipt lookup-token"
REPLY_INFO = b"reprisals-portal/v1 receipt reply-key"
SERVER_DIGEST_INFO = b"reprisals-portal/v1 server lookup-digest"
SEPARATORS = frozenset(" -\u00a0\u2009\u202f\t")

# The Damm algorithm's totally anti-symmetric quasigroup of order 10.
DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


class InvalidReceipt(ValueError):
    """The text is not a receipt; the message says what a person should check."""


def damm(digits: str) -> int:
    """The Damm check digit of a string of ASCII digits (0 when appended to it)."""
    interim = 0
    for d in digits:
        interim = DAMM[interim][ord(d) - 48]
    return interim


def generate(rng: Random = os.urandom) -> str:
    """A new receipt in display form (``"01234 56789 ..."``), from ``rng``.

    Each digit is a random byte below 250 taken modulo 10 (bytes of 250 and
    above are skipped, so every digit is uniform).
    """
    digits: list[str] = []
    while len(digits) < RANDOM_DIGITS:
        digits.extend(str(b % 10) for b in rng(RANDOM_DIGITS) if b < 250)
    body = "".join(digits[:RANDOM_DIGITS])
    return display(body + str(damm(body)))


def display(digits: str) -> str:
    """Digits in groups of five, for showing and writing down."""
    return " ".join(digits[i : i + GROUP] for i in range(0, len(digits), GROUP))


def normalize(text: str) -> str:
    """The 30 ASCII digits of a receipt as typed, or :class:`InvalidReceipt`."""
    if len(text) > 200:
        raise InvalidReceipt("that is far longer than a receipt")
    digits = []
    for char in text.strip():
        if char in SEPARATORS:
            continue
        value = unicodedata.decimal(char, None)
        if value is None:
            raise InvalidReceipt("a receipt has only digits; check what you typed")
        digits.append(str(value))
    if len(digits) != LENGTH:
        raise InvalidReceipt(f"a receipt has {LENGTH} digits; this has {len(digits)}")
    result = "".join(digits)
    if damm(result) != 0:
        raise InvalidReceipt("one of the digits is wrong, or two are swapped; check the receipt")
    return result


def _hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def lookup_token(receipt: str) -> bytes:
    """The 32-byte token that finds the receipt's thread (sent by the browser, never stored)."""
    return _hkdf(normalize(receipt).encode("ascii"), LOOKUP_INFO)


def reply_secret(receipt: str) -> bytes:
    """The X25519 secret key that opens replies to this receipt's thread."""
    return _hkdf(normalize(receipt).encode("ascii"), REPLY_INFO)


def reply_public_key(receipt: str) -> bytes:
    """The public half of :func:`reply_secret`, which the server stores for staff to seal to."""
    return bytes(bindings.crypto_scalarmult_base(reply_secret(receipt)))


def server_digest_key(secret_key: bytes) -> bytes:
    """The server's key for lookup digests, derived from its secret (own purpose string)."""
    return _hkdf(secret_key, SERVER_DIGEST_INFO)


def lookup_digest(digest_key: bytes, token: bytes) -> bytes:
    """What the server stores to find a thread: HMAC-SHA256 of the lookup token.

    Without the server's secret, a stolen database cannot be matched against
    a receipt found on a submitter's phone.
    """
    return hmac.digest(digest_key, token, "sha256")
