"""Independent implementation of envelope format v1, written from docs/FORMAT.md alone.

Nothing here imports or mirrors ``portal``: it exists to prove the specification is enough to
build an interoperable sealer and opener. Primitives only:

- X25519 from ``cryptography`` (the scalar multiplication, nothing else);
- HSalsa20 written out below in pure Python (FORMAT.md §5 step 4);
- XSalsa20-Poly1305 from PyNaCl's low-level ``crypto_secretbox`` / ``crypto_secretbox_open``;
- BLAKE2b, SHA-512, HMAC-SHA256 and HKDF (as the two RFC 5869 formulas) from the standard library;
- AES-256-GCM from ``cryptography``.

Section numbers (§) refer to docs/FORMAT.md.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.bindings import crypto_secretbox, crypto_secretbox_open
from nacl.exceptions import CryptoError

# §2 constants
VERSION = 0x01
MAGIC = b"UNRP"
CHUNK_EXPONENT = 16
CHUNK_SIZE = 1 << CHUNK_EXPONENT
TAG_SIZE = 16
CONTENT_KEY_SIZE = 32
KEY_ID_SIZE = 16
STANZA_SIZE = 96
MAC_SIZE = 32
FIXED_HEADER_SIZE = 16
LENGTH_PREFIX_SIZE = 8
PAD_FLOOR = 65536
MIN_RECIPIENTS = 1
MAX_RECIPIENTS = 16
MAX_PADDED_SIZE = 1 << 40
FINGERPRINT_DOMAIN = b"reprisals-portal key fingerprint v1"
HEADER_MAC_INFO = b"reprisals-portal/v1 header-mac"
PAYLOAD_INFO = b"reprisals-portal/v1 payload"

PATH_BROWSER = 0x01
PATH_SERVER = 0x02
PATH_DESK = 0x03
PATHS = {PATH_BROWSER: "browser", PATH_SERVER: "server", PATH_DESK: "desk"}

FIELD_PRIME = (1 << 255) - 19

assert len(FINGERPRINT_DOMAIN) == 35
assert len(HEADER_MAC_INFO) == 30
assert len(PAYLOAD_INFO) == 27


# §11.1 error categories
class FormatError(Exception):
    """Base class of every error an opener or inspector reports."""


class NotAnEnvelope(FormatError):
    pass


class UnsupportedVersion(FormatError):
    pass


class MalformedEnvelope(FormatError):
    pass


class TruncatedEnvelope(FormatError):
    pass


class NoMatchingKey(FormatError):
    pass


class AuthenticationFailed(FormatError):
    pass


class SealRefused(ValueError):
    """§10 step 1: the sealing request itself is invalid (nothing drawn, nothing written)."""


class InvalidRecipientKey(SealRefused):
    """§10 step 1.3 / §11.1: the recipient list or one of its keys is refused.

    ``reason`` is one of ``RECIPIENT_REASONS``, so a test can tell which check fired first.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


RECIPIENT_REASONS = ("count", "length", "non-canonical", "low-order", "duplicate")


ERROR_CLASSES: dict[str, type[FormatError]] = {
    cls.__name__: cls
    for cls in (
        NotAnEnvelope,
        UnsupportedVersion,
        MalformedEnvelope,
        TruncatedEnvelope,
        NoMatchingKey,
        AuthenticationFailed,
    )
}


# §8.1 Padme and the padded size
def padme(x: int) -> int:
    if x < 2:
        return x
    e = x.bit_length() - 1  # floor(log2(x))
    s = e.bit_length()  # floor(log2(E)) + 1
    mask = (1 << (e - s)) - 1
    return (x + mask) & ~mask


def padded_size(length: int) -> int:
    return padme(max(length + LENGTH_PREFIX_SIZE, PAD_FLOOR))


def valid_padded_size(p: int) -> bool:
    """§4: 65536 <= P <= 2^40 and Padme(P) = P."""
    return PAD_FLOOR <= p <= MAX_PADDED_SIZE and padme(p) == p


def chunk_count(p: int) -> int:
    return -(-p // CHUNK_SIZE)


def header_size(n: int) -> int:
    return FIXED_HEADER_SIZE + STANZA_SIZE * n + MAC_SIZE


def total_size(n: int, p: int) -> int:
    """§8.3."""
    return header_size(n) + p + TAG_SIZE * chunk_count(p)


# §9 key ids and fingerprints
def _digest(pk: bytes) -> bytes:
    if len(pk) != 32:
        raise ValueError("a public key is 32 bytes")
    return hashlib.sha512(FINGERPRINT_DOMAIN + pk).digest()


def key_id(pk: bytes) -> bytes:
    return _digest(pk)[:KEY_ID_SIZE]


def fingerprint(pk: bytes) -> str:
    d = _digest(pk)
    groups = [int.from_bytes(d[5 * g : 5 * g + 5], "big") % 100_000 for g in range(8)]
    return " ".join(f"{v:05d}" for v in groups)


# §6 key derivation, as the RFC 5869 formulas given in the text
def _hkdf_32(ikm: bytes, info: bytes) -> bytes:
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def derive_keys(content_key: bytes) -> tuple[bytes, bytes]:
    """Return (Kh, Kp)."""
    return _hkdf_32(content_key, HEADER_MAC_INFO), _hkdf_32(content_key, PAYLOAD_INFO)


# §5 the sealed box, from primitives
_MASK32 = 0xFFFFFFFF


def _rotl(v: int, c: int) -> int:
    return ((v << c) & _MASK32) | (v >> (32 - c))


def hsalsa20(key: bytes, inp: bytes) -> bytes:
    """HSalsa20 (Bernstein, "Extending the Salsa20 nonce"): 32-byte key, 16-byte input."""
    if len(key) != 32 or len(inp) != 16:
        raise ValueError("HSalsa20 takes a 32-byte key and a 16-byte input")
    k = [int.from_bytes(key[4 * i : 4 * i + 4], "little") for i in range(8)]
    n = [int.from_bytes(inp[4 * i : 4 * i + 4], "little") for i in range(4)]
    c = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]  # "expand 32-byte k"
    x = [c[0], *k[0:4], c[1], *n, c[2], *k[4:8], c[3]]

    def qr(a: int, b: int, cc: int, d: int) -> None:
        x[b] ^= _rotl((x[a] + x[d]) & _MASK32, 7)
        x[cc] ^= _rotl((x[b] + x[a]) & _MASK32, 9)
        x[d] ^= _rotl((x[cc] + x[b]) & _MASK32, 13)
        x[a] ^= _rotl((x[d] + x[cc]) & _MASK32, 18)

    for _ in range(10):
        qr(0, 4, 8, 12)
        qr(5, 9, 13, 1)
        qr(10, 14, 2, 6)
        qr(15, 3, 7, 11)
        qr(0, 1, 2, 3)
        qr(5, 6, 7, 4)
        qr(10, 11, 8, 9)
        qr(15, 12, 13, 14)
    out = [x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9]]
    return b"".join(w.to_bytes(4, "little") for w in out)


def x25519(scalar: bytes, u: bytes) -> bytes:
    """RFC 7748 X25519; raises ValueError when the result is 32 zero bytes."""
    priv = X25519PrivateKey.from_private_bytes(scalar)
    return priv.exchange(X25519PublicKey.from_public_bytes(u))


def x25519_base(scalar: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes_raw()


def _box_nonce(epk: bytes, rpk: bytes) -> bytes:
    return hashlib.blake2b(epk + rpk, digest_size=24).digest()


def seal_box(content_key: bytes, rpk: bytes, esk: bytes) -> bytes:
    """§5 steps 1-6: returns the 80-byte ``epk || tag || ct``."""
    epk = x25519_base(esk)
    nonce = _box_nonce(epk, rpk)
    try:
        s = x25519(esk, rpk)
    except ValueError as exc:  # all-zero shared secret; §10 step 1 keeps such keys out of seal()
        raise InvalidRecipientKey("low-order", "the shared secret is zero") from exc
    k = hsalsa20(s, b"\x00" * 16)
    boxed = crypto_secretbox(content_key, nonce, k)  # tag (16) || ciphertext (32)
    assert len(boxed) == 48
    return epk + boxed


def open_box(box: bytes, sk: bytes, own_pk: bytes) -> bytes:
    """Reverse of seal_box; AuthenticationFailed on a tag mismatch or an all-zero secret."""
    epk, boxed = box[:32], box[32:]
    nonce = _box_nonce(epk, own_pk)
    try:
        s = x25519(sk, epk)
    except ValueError as exc:
        raise AuthenticationFailed("stanza: the shared secret is zero") from exc
    k = hsalsa20(s, b"\x00" * 16)
    try:
        return bytes(crypto_secretbox_open(boxed, nonce, k))
    except CryptoError as exc:
        raise AuthenticationFailed("stanza does not open") from exc


# §13.3 public key checks
_LOW_ORDER_PROBE = b"\x07" * 32


def is_canonical(pk: bytes) -> bool:
    return int.from_bytes(pk, "little") < FIELD_PRIME


def is_low_order(pk: bytes) -> bool:
    """True when X25519 with a clamped scalar gives zero (§13.3; §5 for non-canonical inputs)."""
    try:
        x25519(_LOW_ORDER_PROBE, pk)
    except ValueError:
        return True
    return False


def check_public_key(pk: bytes) -> None:
    """§10 step 1.3 / §13.3, in that order: 32 bytes, canonical form, not of low order."""
    if len(pk) != 32:
        raise InvalidRecipientKey("length", f"a recipient key is 32 bytes, not {len(pk)}")
    if not is_canonical(pk):
        raise InvalidRecipientKey("non-canonical", "a recipient key is not in canonical form")
    if is_low_order(pk):
        raise InvalidRecipientKey("low-order", "a recipient key is of low order")


def check_recipients(keys: Sequence[bytes]) -> None:
    """§10 step 1.3: 1 to 16 keys, each checked in the caller's order, then pairwise distinct."""
    if not MIN_RECIPIENTS <= len(keys) <= MAX_RECIPIENTS:
        raise InvalidRecipientKey("count", f"{len(keys)} recipients; 1 to 16 are allowed")
    for pk in keys:
        check_public_key(pk)
    if len(set(keys)) != len(keys):
        raise InvalidRecipientKey("duplicate", "the same recipient key is listed twice")


def public_key_from_secret(sk: bytes) -> bytes:
    return x25519_base(sk)


# §8.2 chunk nonces
def chunk_nonce(i: int, last: bool) -> bytes:
    return i.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


# §10 sealing
def seal(
    plaintext: bytes,
    recipient_public_keys: Sequence[bytes],
    path_code: int,
    random_bytes_fn: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """§10: every check of step 1, in its order, before any randomness is drawn."""
    # step 1.1: the caller names the path; there is no default
    if path_code not in PATHS:
        raise SealRefused(f"unknown sealing path {path_code!r}")
    # step 1.2: L >= 0 holds for bytes; P <= 2^40
    length = len(plaintext)
    p = padded_size(length)
    if p > MAX_PADDED_SIZE:
        raise SealRefused("content too large")
    # step 1.3
    keys = [bytes(k) for k in recipient_public_keys]
    check_recipients(keys)

    padded = length.to_bytes(8, "big") + bytes(plaintext) + bytes(p - LENGTH_PREFIX_SIZE - length)
    return seal_raw(padded, keys, path_code, random_bytes_fn)


def seal_raw(
    padded: bytes | bytearray,
    recipient_public_keys: Sequence[bytes],
    path_code: int,
    random_bytes_fn: Callable[[int], bytes] = os.urandom,
    *,
    padded_size_field: int | None = None,
    last_flags: Sequence[bool] | None = None,
    count_field: int | None = None,
) -> bytes:
    """Seal an already padded plaintext with no validity checks (§10 steps 2-4 only).

    Used by ``seal`` and, with deliberately invalid inputs, to play a faulty sealer: the
    result is correctly authenticated but may violate §8.1 (wrong length prefix, non-zero
    padding) or §8.2 (wrong last-chunk flags).
    """
    keys = [bytes(k) for k in recipient_public_keys]
    p = len(padded)

    def rand(n: int) -> bytes:
        out = bytes(random_bytes_fn(n))
        if len(out) != n:
            raise SealRefused("random source returned the wrong number of bytes")
        return out

    content_key = rand(CONTENT_KEY_SIZE)
    esks = [rand(32) for _ in keys]

    p_field = p if padded_size_field is None else padded_size_field
    n_field = len(keys) if count_field is None else count_field
    fixed = (
        bytes([VERSION])
        + MAGIC
        + bytes([path_code, n_field, CHUNK_EXPONENT])
        + p_field.to_bytes(8, "big")
    )
    stanzas = b"".join(
        key_id(pk) + seal_box(content_key, pk, esk) for pk, esk in zip(keys, esks, strict=True)
    )
    kh, kp = derive_keys(content_key)
    body = fixed + stanzas
    out = bytearray(body)
    out += hmac.new(kh, body, hashlib.sha256).digest()

    aead = AESGCM(kp)
    c = chunk_count(p)
    flags = [i == c - 1 for i in range(c)] if last_flags is None else list(last_flags)
    for i in range(c):
        chunk = padded[CHUNK_SIZE * i : min(CHUNK_SIZE * (i + 1), p)]
        out += aead.encrypt(chunk_nonce(i, flags[i]), chunk, None)
    return bytes(out)


# §11.2 steps 1-4, shared by open and inspect
def _parse_header(env: bytes) -> dict[str, Any]:
    m = len(env)
    # step 1
    if m < FIXED_HEADER_SIZE:
        if m <= 1:
            raise NotAnEnvelope("too short to be an envelope")
        k = min(m, 5) - 1
        if env[1 : 1 + k] == MAGIC[:k]:
            raise TruncatedEnvelope("the input ends inside the fixed header")
        raise NotAnEnvelope("does not start like an envelope")
    # step 2
    if env[1:5] != MAGIC:
        raise NotAnEnvelope("wrong magic")
    version = env[0]
    if version != VERSION:
        raise UnsupportedVersion(f"version {version}")
    path, n, exponent = env[5], env[6], env[7]
    p = int.from_bytes(env[8:16], "big")
    if path not in PATHS:
        raise MalformedEnvelope(f"sealing path {path}")
    if exponent != CHUNK_EXPONENT:
        raise MalformedEnvelope(f"chunk exponent {exponent}")
    if not MIN_RECIPIENTS <= n <= MAX_RECIPIENTS:
        raise MalformedEnvelope(f"recipient count {n}")
    if not valid_padded_size(p):
        raise MalformedEnvelope(f"padded size {p}")
    # step 3
    h = header_size(n)
    if m < h:
        raise TruncatedEnvelope("the input ends inside the header")
    # step 4
    stanzas = [env[16 + STANZA_SIZE * i : 16 + STANZA_SIZE * (i + 1)] for i in range(n)]
    ids = [s[:KEY_ID_SIZE] for s in stanzas]
    if len(set(ids)) != n:
        raise MalformedEnvelope("duplicate key ids")
    return {
        "version": version,
        "path": path,
        "path_name": PATHS[path],
        "recipient_count": n,
        "chunk_exponent": exponent,
        "padded_size": p,
        "chunk_count": chunk_count(p),
        "header_size": h,
        "key_ids": ids,
        "stanzas": stanzas,
        "header": env[:h],
        "total_size": total_size(n, p),
    }


# §12
def inspect(envelope: bytes) -> dict[str, Any]:
    env = bytes(envelope)
    info = _parse_header(env)
    total = info["total_size"]
    if len(env) < total:
        raise TruncatedEnvelope("the input ends before the last chunk is complete")
    if len(env) > total:
        raise MalformedEnvelope("bytes after the end")
    return info


# §11.2
def open(envelope: bytes, secret_keys: bytes | Sequence[bytes]) -> bytes:
    """Open with one 32-byte secret key, or several tried in order (§11.2 step 5)."""
    env = bytes(envelope)
    keys = [bytes(secret_keys)] if isinstance(secret_keys, bytes | bytearray) else list(secret_keys)
    info = _parse_header(env)
    n, p, h = info["recipient_count"], info["padded_size"], info["header_size"]
    ids: list[bytes] = info["key_ids"]

    # step 5
    kp: bytes | None = None
    for sk in keys:
        own_pk = public_key_from_secret(sk)
        kid = key_id(own_pk)
        if kid not in ids:
            continue
        stanza = info["stanzas"][ids.index(kid)]
        content_key = open_box(stanza[KEY_ID_SIZE:], sk, own_pk)
        kh, kp = derive_keys(content_key)
        mac_start = FIXED_HEADER_SIZE + STANZA_SIZE * n
        expected = hmac.new(kh, env[:mac_start], hashlib.sha256).digest()
        if not hmac.compare_digest(expected, env[mac_start:h]):
            raise AuthenticationFailed("header MAC does not verify")
        break
    if kp is None:
        raise NoMatchingKey("no key has a stanza in this envelope")

    # step 6
    aead = AESGCM(kp)
    c = chunk_count(p)
    offset = h
    length = 0
    out = bytearray()
    for i in range(c):
        clen = min(CHUNK_SIZE, p - CHUNK_SIZE * i)
        need = clen + TAG_SIZE
        if len(env) - offset < need:
            raise TruncatedEnvelope(f"the input ends inside chunk {i}")
        sealed = env[offset : offset + need]
        offset += need
        try:
            chunk = aead.decrypt(chunk_nonce(i, i == c - 1), sealed, None)
        except InvalidTag as exc:
            raise AuthenticationFailed(f"chunk {i} does not verify") from exc
        start = CHUNK_SIZE * i  # position of this chunk in the padded plaintext
        if i == 0:
            length = int.from_bytes(chunk[:LENGTH_PREFIX_SIZE], "big")
            if padded_size(length) != p:
                raise MalformedEnvelope("declared length does not match the padded size")
        content_end = LENGTH_PREFIX_SIZE + length  # exclusive, in padded coordinates
        lo = max(start, LENGTH_PREFIX_SIZE)
        hi = min(start + clen, content_end)
        pad_from = max(start, content_end) - start
        if chunk[pad_from:] != bytes(max(0, clen - pad_from)):
            raise MalformedEnvelope(f"non-zero padding in chunk {i}")
        if hi > lo:
            out += chunk[lo - start : hi - start]

    # step 7
    if offset != len(env):
        raise MalformedEnvelope("bytes after the end")
    return bytes(out)
