"""The team's signatures on what the desk sends back: Ed25519, one purpose string per kind.

The desk holds an Ed25519 signing key (``portal-desk keygen --signing``); the
key manifest lists its public key under ``signing_keys`` (FORMAT.md §13.4).
Two kinds of message are signed, each with its own purpose string, so that a
signature of one kind can never pass for the other (docs/BUNDLES.md §8.6):

- a **reply**: ``REPLY_PURPOSE || thread_id (32 ASCII hex digits) ||
  SHA-256(reply envelope)``, checked by the server when the return bundle
  arrives and again by the submitter's reader before a reply is shown;
- a **return bundle**: ``RETURN_PURPOSE || SHA-256(return.json)``, checked
  by the server before anything in the bundle is acted on.

Key ids and fingerprints are computed as FORMAT.md §9 does for encryption
keys, under another domain string, so a signing key never shares a key id or a
fingerprint with an encryption key of the same 32 bytes. Standard library and
PyNaCl only: the desk, the server and the test vectors all use it.
"""

from __future__ import annotations

import hashlib
import re

from nacl import bindings
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64
FINGERPRINT_DOMAIN = b"reprisals-portal signing key fingerprint v1"
REPLY_PURPOSE = b"reprisals-portal/v1 reply\n"
RETURN_PURPOSE = b"reprisals-portal/v1 return\n"
THREAD_PATTERN = re.compile(r"[0-9a-f]{32}")


class InvalidSigningKey(ValueError):
    """A public key is not a usable Ed25519 verification key."""


def check_public_key(raw: bytes) -> None:
    """Refuse a key that is not 32 bytes encoding a canonical point of the main subgroup.

    libsodium's ``crypto_core_ed25519_is_valid_point`` refuses non-canonical
    encodings, points off the curve, points of small order and points outside
    the prime-order subgroup: with any of those, signatures could verify for
    more than one key or for no one's.
    """
    if len(raw) != PUBLIC_KEY_SIZE:
        raise InvalidSigningKey(f"a signing key has {PUBLIC_KEY_SIZE} bytes, not {len(raw)}")
    if not bindings.crypto_core_ed25519_is_valid_point(raw):
        raise InvalidSigningKey("the signing key is not a valid Ed25519 public key")


def key_id(public_key: bytes) -> bytes:
    """The 16-byte key id of a signing public key (FORMAT.md §13.4)."""
    return _digest(public_key)[:16]


def fingerprint(public_key: bytes) -> str:
    """Eight groups of five digits, as FORMAT.md §9, under the signing key domain."""
    digest = _digest(public_key)
    groups = (int.from_bytes(digest[i : i + 5], "big") % 100000 for i in range(0, 40, 5))
    return " ".join(f"{g:05d}" for g in groups)


def public_key_of(seed: bytes) -> bytes:
    """The Ed25519 public key of a 32-byte seed."""
    return bytes(SigningKey(seed).verify_key)


def reply_message(thread_id: str, envelope: bytes) -> bytes:
    """The bytes signed for one reply: purpose, thread id, SHA-256 of the envelope."""
    if not THREAD_PATTERN.fullmatch(thread_id):
        raise ValueError("a thread id is 32 lower-case hex digits")
    return REPLY_PURPOSE + thread_id.encode("ascii") + hashlib.sha256(envelope).digest()


def return_message(manifest: bytes) -> bytes:
    """The bytes signed for a return bundle: purpose, SHA-256 of ``return.json``."""
    return RETURN_PURPOSE + hashlib.sha256(manifest).digest()


def sign(key: SigningKey, message: bytes) -> bytes:
    """The 64-byte detached Ed25519 signature of ``message``."""
    return bytes(key.sign(message).signature)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s valid signature of ``message``."""
    if len(signature) != SIGNATURE_SIZE or len(public_key) != PUBLIC_KEY_SIZE:
        return False
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, CryptoError, ValueError):
        return False
    return True


def _digest(public_key: bytes) -> bytes:
    return hashlib.sha512(FINGERPRINT_DOMAIN + public_key).digest()
