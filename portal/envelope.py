"""The encrypted envelope, version 1: the one Python implementation.

An envelope is a random 32-byte content key wrapped for each recipient with a
libsodium sealed box, a header authenticated with HMAC-SHA256 under a key
derived from the content key, and the padded plaintext in AES-256-GCM STREAM
chunks of 64 KiB. ``docs/FORMAT.md`` specifies every byte; this module and
``envelope.js`` are checked against the same vectors in ``tests/vectors/``.

This module imports PyNaCl, ``cryptography`` and the standard library only:
the offline desk and the server both use it, and neither web stack nor
database may be pulled in with the crypto.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import io
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl import bindings
from nacl.exceptions import CryptoError
from nacl.exceptions import RuntimeError as NaclRuntimeError
from nacl.public import PrivateKey, SealedBox

VERSION = 1
MAGIC = b"UNRP"
CHUNK_SIZE = 65536
CHUNK_EXPONENT = 16
TAG_SIZE = 16
KEY_SIZE = 32
KEY_ID_SIZE = 16
SEALED_KEY_SIZE = 32 + 16 + KEY_SIZE  # crypto_box_seal: ephemeral public key, tag, boxed key
STANZA_SIZE = KEY_ID_SIZE + SEALED_KEY_SIZE
MAC_SIZE = 32
FIXED_HEADER_SIZE = 16
LENGTH_PREFIX_SIZE = 8
PAD_FLOOR = CHUNK_SIZE  # every report up to ~64 KiB has the same padded size
MAX_RECIPIENTS = 16
MAX_PADDED_SIZE = 1 << 40  # 1 TiB: far above any upload limit, far below any counter limit
FIELD_PRIME = 2**255 - 19

FINGERPRINT_DOMAIN = b"reprisals-portal key fingerprint v1"
HEADER_KEY_INFO = b"reprisals-portal/v1 header-mac"
PAYLOAD_KEY_INFO = b"reprisals-portal/v1 payload"

Random = Callable[[int], bytes]
BATCH_CHUNKS = 16
_ZEROS = memoryview(bytes(CHUNK_SIZE))


class SealPath(enum.IntEnum):
    """Where the envelope was sealed, as its sealer declares it in the header.

    The header MAC stops anyone without the content key from changing it; it
    cannot stop a dishonest sealer (such as a compromised server) from lying.
    """

    BROWSER = 1
    SERVER = 2
    DESK = 3


class EnvelopeError(Exception):
    """Base class: ``str(err)`` says what is wrong, ``err.hint`` what to do about it."""

    hint = "The envelope cannot be used."

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class NotAnEnvelope(EnvelopeError):
    hint = "Check that this is the file the portal exported, not another file."


class UnsupportedVersion(EnvelopeError):
    hint = "Upgrade portal-desk, or ask whoever sealed it which version they used."


class MalformedEnvelope(EnvelopeError):
    hint = "The file is damaged or was not written by a portal implementation."


class TruncatedEnvelope(EnvelopeError):
    hint = "The file is incomplete: copy or export it again."


class NoMatchingKey(EnvelopeError):
    hint = (
        "Use the secret key this envelope was sealed to:"
        " `portal-desk inspect --manifest keys/manifest.json FILE` names its recipients."
    )


class AuthenticationFailed(EnvelopeError):
    hint = "The envelope was altered or damaged after sealing; do not trust its contents."


class InvalidRecipientKey(EnvelopeError, ValueError):
    hint = "Use the public key exactly as `portal-desk keygen` printed it."


class SizeMismatch(EnvelopeError):
    hint = "The input changed while it was being sealed; seal it again."


@dataclass(frozen=True)
class Header:
    """What an envelope says about itself; readable without any key."""

    version: int
    path: SealPath
    padded_size: int
    key_ids: tuple[bytes, ...]
    header_size: int

    @property
    def chunk_count(self) -> int:
        return chunk_count(self.padded_size)

    @property
    def total_size(self) -> int:
        """The exact length in bytes of the whole envelope this header announces."""
        return self.header_size + self.padded_size + TAG_SIZE * self.chunk_count


def padme(length: int) -> int:
    """The Padme padded length of ``length`` (leaks O(log log L) bits of it)."""
    if length < 2:
        return length
    exponent = length.bit_length() - 1
    size_bits = exponent.bit_length()
    mask = (1 << (exponent - size_bits)) - 1
    return (length + mask) & ~mask


def padded_size(content_size: int) -> int:
    """Bytes of padded plaintext for ``content_size`` bytes of content."""
    return padme(max(content_size + LENGTH_PREFIX_SIZE, PAD_FLOOR))


def chunk_count(padded: int) -> int:
    return -(-padded // CHUNK_SIZE)


def key_id(public_key: bytes) -> bytes:
    """The 16-byte key id of an X25519 public key (the first bytes of its fingerprint hash)."""
    return _fingerprint_hash(public_key)[:KEY_ID_SIZE]


def fingerprint(public_key: bytes) -> str:
    """The fingerprint people compare: eight groups of five digits, as in ``"01234 56789 ..."``.

    Each group is five bytes of SHA-512(domain || key) read as a big-endian
    integer modulo 100000, so it is language-neutral and can be read aloud.
    """
    digest = _fingerprint_hash(public_key)
    groups = (int.from_bytes(digest[i : i + 5], "big") % 100000 for i in range(0, 40, 5))
    return " ".join(f"{g:05d}" for g in groups)


def _fingerprint_hash(public_key: bytes) -> bytes:
    if len(public_key) != KEY_SIZE:
        raise ValueError("an X25519 public key is 32 bytes")
    return hashlib.sha512(FINGERPRINT_DOMAIN + public_key).digest()


def check_public_key(public_key: bytes) -> None:
    """Refuse a recipient key that is the wrong length, not canonical, or of low order.

    Sealing to a low-order point would expose the content key to anyone; a
    non-canonical encoding would give one key two fingerprints.
    """
    if len(public_key) != KEY_SIZE:
        raise InvalidRecipientKey(f"a public key is {KEY_SIZE} bytes, not {len(public_key)}")
    if int.from_bytes(public_key, "little") >= FIELD_PRIME:
        raise InvalidRecipientKey("the public key is not in canonical form")
    try:
        # Clamped scalars are multiples of 8, so the product is the identity
        # (which libsodium refuses) exactly when the point has small order.
        bindings.crypto_scalarmult(b"\x07" * KEY_SIZE, public_key)
    except NaclRuntimeError:
        raise InvalidRecipientKey("the public key is a low-order point") from None


def _derive(content_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(
        content_key
    )


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _wrap_key(content_key: bytes, recipient: bytes, rng: Random) -> bytes:
    """libsodium's crypto_box_seal, with the ephemeral secret drawn from ``rng``.

    Written out (rather than ``SealedBox.encrypt``) only so that known-answer
    vectors can fix the randomness; the tests prove ``SealedBox`` opens it.
    """
    ephemeral_secret = rng(KEY_SIZE)
    ephemeral_public = bindings.crypto_scalarmult_base(ephemeral_secret)
    nonce = hashlib.blake2b(ephemeral_public + recipient, digest_size=24).digest()
    boxed = bindings.crypto_box(content_key, nonce, recipient, ephemeral_secret)
    return bytes(ephemeral_public + boxed)


def check_recipients(recipients: Sequence[bytes]) -> None:
    """Refuse a recipient list an envelope cannot carry (before any randomness is drawn)."""
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise InvalidRecipientKey(f"an envelope needs 1 to {MAX_RECIPIENTS} recipients")
    for public_key in recipients:
        check_public_key(public_key)
    if len(set(recipients)) != len(recipients):
        raise InvalidRecipientKey("the same recipient key is listed twice")


def encode_header(
    recipients: Sequence[bytes], padded: int, path: SealPath, rng: Random
) -> tuple[bytes, bytes]:
    """A new content key and the complete header (fixed part, stanzas, MAC) that wraps it.

    The recipients are checked before any randomness is drawn; then the
    content key, then one ephemeral secret per recipient, all from ``rng``.
    """
    check_recipients(recipients)
    content_key = rng(KEY_SIZE)
    ids = [key_id(pk) for pk in recipients]
    fixed = struct.pack(">B4sBBBQ", VERSION, MAGIC, path, len(recipients), CHUNK_EXPONENT, padded)
    stanzas = b"".join(
        i + _wrap_key(content_key, pk, rng) for i, pk in zip(ids, recipients, strict=True)
    )
    body = fixed + stanzas
    mac = hmac.digest(_derive(content_key, HEADER_KEY_INFO), body, "sha256")
    return body + mac, content_key


def _parse_fixed(fixed: bytes) -> tuple[SealPath, int, int]:
    """Validate the 16-byte fixed header; returns (path, recipient count, padded size)."""
    if len(fixed) < FIXED_HEADER_SIZE:
        if not fixed:
            raise NotAnEnvelope("the input is empty")
        if fixed[1:5] and MAGIC.startswith(fixed[1:5]):
            raise TruncatedEnvelope(f"only {len(fixed)} bytes: the envelope header is cut short")
        raise NotAnEnvelope("this is not a portal envelope (too short)")
    version, magic, path, count, exponent, padded = struct.unpack(">B4sBBBQ", fixed[:16])
    if magic != MAGIC:
        raise NotAnEnvelope("this is not a portal envelope (its first bytes are wrong)")
    if version != VERSION:
        raise UnsupportedVersion(f"envelope version {version} is not supported (this is v1)")
    if path not in SealPath._value2member_map_:
        raise MalformedEnvelope(f"unknown sealing path {path} in the header")
    if exponent != CHUNK_EXPONENT:
        raise MalformedEnvelope(f"chunk size 2^{exponent} is not allowed in v1 (only 2^16)")
    if not 1 <= count <= MAX_RECIPIENTS:
        raise MalformedEnvelope(f"{count} recipients declared; v1 allows 1 to {MAX_RECIPIENTS}")
    if not PAD_FLOOR <= padded <= MAX_PADDED_SIZE or padme(padded) != padded:
        raise MalformedEnvelope(f"declared padded size {padded} is not a valid padded size")
    return SealPath(path), count, padded


def header_size(count: int) -> int:
    return FIXED_HEADER_SIZE + count * STANZA_SIZE + MAC_SIZE


def parse_header(data: bytes) -> Header:
    """Validate the header at the start of ``data``; needs no key.

    Raises a typed :class:`EnvelopeError`. ``data`` may run on into the
    payload, which is ignored here.
    """
    path, count, padded = _parse_fixed(data[:FIXED_HEADER_SIZE])
    size = header_size(count)
    if len(data) < size:
        raise TruncatedEnvelope(f"the header needs {size} bytes but only {len(data)} are present")
    starts = range(FIXED_HEADER_SIZE, FIXED_HEADER_SIZE + count * STANZA_SIZE, STANZA_SIZE)
    ids = tuple(data[at : at + KEY_ID_SIZE] for at in starts)
    if len(set(ids)) != count:
        raise MalformedEnvelope("the same recipient key id appears twice in the header")
    return Header(VERSION, path, padded, ids, size)


def read_header(src: BinaryIO) -> tuple[Header, bytes]:
    """Read and validate the header from ``src``; returns it with its raw bytes."""
    fixed = _read_exact(src, FIXED_HEADER_SIZE)
    _, count, _ = _parse_fixed(fixed)
    raw = fixed + _read_exact(src, header_size(count) - FIXED_HEADER_SIZE)
    return parse_header(raw), raw


def inspect(src: BinaryIO) -> Header:
    """Check an envelope's structure without any key: header, framing and exact length.

    Streams through ``src`` (or seeks, when it can), so it runs in constant
    memory. Raises :class:`TruncatedEnvelope` when bytes are missing and
    :class:`MalformedEnvelope` when there are bytes past the end.
    """
    header, _ = read_header(src)
    remaining = header.total_size - header.header_size
    present = _remaining_length(src, remaining + 1)
    if present < remaining:
        missing = remaining - present
        raise TruncatedEnvelope(f"{missing} bytes are missing from the end of the envelope")
    if present > remaining:
        raise MalformedEnvelope("there are extra bytes after the end of the envelope")
    return header


def _remaining_length(src: BinaryIO, limit: int) -> int:
    if src.seekable():
        here = src.tell()
        end = src.seek(0, os.SEEK_END)
        src.seek(here)
        return min(end - here, limit)
    total = 0
    while total < limit:
        block = src.read(min(1 << 20, limit - total))
        if not block:
            break
        total += len(block)
    return total


def _read_exact(src: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        block = src.read(size - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def _blocks(src: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(src, bytes | bytearray | memoryview):
        yield bytes(src)
        return
    read = getattr(src, "read", None)
    if read is None:
        yield from src
        return
    while block := read(1 << 20):
        yield block


def _plain_chunks(content: Iterator[bytes], size: int, padded: int) -> Iterator[memoryview]:
    """Yield the padded plaintext in CHUNK_SIZE pieces, checking ``content`` is ``size`` long.

    Every piece is a view of one reused buffer: use it before asking for the next.
    """
    buf = bytearray(CHUNK_SIZE)
    buf[:LENGTH_PREFIX_SIZE] = size.to_bytes(LENGTH_PREFIX_SIZE, "big")
    fill = LENGTH_PREFIX_SIZE
    seen = 0
    for block in content:
        seen += len(block)
        if seen > size:
            raise SizeMismatch(f"the input is longer than the {size} bytes declared")
        view = memoryview(block)
        while view:
            take = min(CHUNK_SIZE - fill, len(view))
            buf[fill : fill + take] = view[:take]
            fill, view = fill + take, view[take:]
            if fill == CHUNK_SIZE:
                yield memoryview(buf)
                fill = 0
    if seen != size:
        raise SizeMismatch(f"the input ended after {seen} of the {size} bytes declared")
    left = padded - size - LENGTH_PREFIX_SIZE
    while left:
        take = min(CHUNK_SIZE - fill, left)
        buf[fill : fill + take] = _ZEROS[:take]
        fill, left = fill + take, left - take
        if fill == CHUNK_SIZE:
            yield memoryview(buf)
            fill = 0
    if fill:
        yield memoryview(buf)[:fill]


def seal_stream(
    src: BinaryIO | Iterable[bytes],
    dst: BinaryIO,
    recipients: Sequence[bytes],
    size: int,
    path: SealPath,
    *,
    rng: Random = os.urandom,
) -> Header:
    """Seal ``size`` bytes from ``src`` (a file object or an iterable of bytes) to ``dst``.

    ``recipients`` are raw 32-byte X25519 public keys. Memory use is a few
    chunks whatever the size. Randomness comes from ``rng`` in a fixed order
    (content key, then one ephemeral secret per recipient) so that tests can
    reproduce the known-answer vectors; everything else MUST leave it as
    ``os.urandom``, since a repeated content key repeats AES-GCM nonces.
    Raises :class:`SizeMismatch` if ``src`` is not ``size`` long; whatever
    was already written to ``dst`` must then be discarded.
    """
    path = SealPath(path)  # an unknown path is refused before anything is written
    if size < 0:
        raise ValueError("size must not be negative")
    padded = padded_size(size)
    if padded > MAX_PADDED_SIZE:
        raise ValueError("the input is larger than an envelope can hold")
    header_bytes, content_key = encode_header(recipients, padded, path, rng)
    dst.write(header_bytes)
    aead = AESGCM(_derive(content_key, PAYLOAD_KEY_INFO))
    total = chunk_count(padded)
    out = bytearray(CHUNK_SIZE + TAG_SIZE)
    for counter, chunk in enumerate(_plain_chunks(_blocks(src), size, padded)):
        sealed = memoryview(out)[: len(chunk) + TAG_SIZE]
        aead.encrypt_into(_nonce(counter, counter == total - 1), chunk, None, sealed)
        dst.write(sealed)
    return parse_header(header_bytes)


def unwrap(header_raw: bytes, header: Header, identities: Sequence[PrivateKey]) -> bytes:
    """Find a stanza for one of ``identities``, open it, and verify the header MAC.

    Returns the content key. Raises :class:`NoMatchingKey` or
    :class:`AuthenticationFailed`.
    """
    for identity in identities:
        own_id = key_id(bytes(identity.public_key))
        if own_id not in header.key_ids:
            continue
        at = FIXED_HEADER_SIZE + header.key_ids.index(own_id) * STANZA_SIZE + KEY_ID_SIZE
        try:
            content_key = SealedBox(identity).decrypt(header_raw[at : at + SEALED_KEY_SIZE])
        except CryptoError:
            raise AuthenticationFailed(
                "the key stanza for this secret key does not open: the header was altered"
            ) from None
        mac_key = _derive(content_key, HEADER_KEY_INFO)
        expected = hmac.digest(mac_key, header_raw[:-MAC_SIZE], "sha256")
        if not hmac.compare_digest(expected, header_raw[-MAC_SIZE:]):
            raise AuthenticationFailed("the envelope header failed authentication")
        return content_key
    raise NoMatchingKey("this envelope was not sealed to any of the secret keys given")


def open_stream(
    src: BinaryIO,
    dst: BinaryIO,
    identities: Sequence[PrivateKey],
    *,
    header: tuple[Header, bytes] | None = None,
) -> Header:
    """Decrypt the envelope in ``src`` into ``dst``, chunk by chunk, in constant memory.

    Every chunk is authenticated before its plaintext is written, but a
    failure in a later chunk (tampering, truncation) leaves earlier plaintext
    in ``dst``: callers must discard ``dst`` when this raises. The desk writes
    to a temporary file and renames it only after success. A caller that has
    already read the header with :func:`read_header` (to choose which key to
    unlock) passes it as ``header`` and ``src`` positioned just after it.
    """
    parsed, header_raw = read_header(src) if header is None else header
    content_key = unwrap(header_raw, parsed, identities)
    _decrypt_payload(src, dst, content_key, parsed.padded_size)
    return parsed


def _decrypt_payload(src: BinaryIO, dst: BinaryIO, content_key: bytes, padded: int) -> None:
    opener = _ChunkOpener(AESGCM(_derive(content_key, PAYLOAD_KEY_INFO)), padded)
    sealed = bytearray(opener.batch * (CHUNK_SIZE + TAG_SIZE))
    # Whole batches of chunks per read and write: one chunk per syscall costs
    # a third of the throughput on large files. Checks still run chunk by chunk.
    for first in range(0, opener.total, BATCH_CHUNKS):
        chunks = range(first, min(first + BATCH_CHUNKS, opener.total))
        size = min(len(chunks) * CHUNK_SIZE, padded - first * CHUNK_SIZE)
        got = _readinto_exact(src, memoryview(sealed)[: size + TAG_SIZE * len(chunks)])
        dst.write(opener.open_batch(memoryview(sealed)[:got], chunks))
    if src.read(1):
        raise MalformedEnvelope("there are extra bytes after the end of the envelope")


class _ChunkOpener:
    """Authenticates chunks in order and returns their content, padding removed."""

    def __init__(self, aead: AESGCM, padded: int) -> None:
        self.aead, self.padded, self.total = aead, padded, chunk_count(padded)
        self.batch = min(BATCH_CHUNKS, self.total)
        self.plain = memoryview(bytearray(self.batch * CHUNK_SIZE))
        self.content_left = -1

    def open_batch(self, sealed: memoryview, chunks: range) -> memoryview:
        at = out = start = stop = 0
        for counter in chunks:
            plain_len = min(CHUNK_SIZE, self.padded - counter * CHUNK_SIZE)
            piece = self.plain[out : out + plain_len]
            self._open(sealed[at : at + plain_len + TAG_SIZE], counter, piece)
            skip = 0
            if counter == 0:
                self.content_left = _content_size(piece, self.padded)
                start = skip = LENGTH_PREFIX_SIZE
            keep = min(self.content_left, plain_len - skip)
            if piece[skip + keep :] != _ZEROS[: plain_len - skip - keep]:
                raise MalformedEnvelope("the padding is not zero: the sealer is faulty")
            if keep:
                stop = out + skip + keep
            self.content_left -= keep
            at, out = at + plain_len + TAG_SIZE, out + plain_len
        return self.plain[start:stop] if stop else self.plain[:0]

    def _open(self, sealed: memoryview, counter: int, target: memoryview) -> None:
        where = f"chunk {counter + 1} of {self.total}"
        if len(sealed) < len(target) + TAG_SIZE:
            raise TruncatedEnvelope(f"the envelope is cut short at {where}")
        try:
            nonce = _nonce(counter, counter == self.total - 1)
            self.aead.decrypt_into(nonce, sealed, None, target)
        except InvalidTag:
            raise AuthenticationFailed(f"{where} failed authentication") from None


def _content_size(first_chunk: memoryview, padded: int) -> int:
    size = int.from_bytes(first_chunk[:LENGTH_PREFIX_SIZE], "big")
    if padded_size(size) != padded:
        raise MalformedEnvelope("the declared content size does not match the padding")
    return size


def _readinto_exact(src: BinaryIO, view: memoryview) -> int:
    readinto = getattr(src, "readinto", None)
    got = 0
    while got < len(view):
        if readinto is not None:
            n = readinto(view[got:])
        else:
            block = src.read(len(view) - got)
            view[got : got + len(block)] = block
            n = len(block)
        if not n:
            break
        got += n
    return got


def seal(
    data: bytes,
    recipients: Sequence[bytes],
    path: SealPath,
    *,
    rng: Random = os.urandom,
) -> bytes:
    """Seal a small byte string in memory; see :func:`seal_stream`."""
    out = io.BytesIO()
    seal_stream([data], out, recipients, len(data), path, rng=rng)
    return out.getvalue()


def open_bytes(envelope: bytes, identities: Sequence[PrivateKey]) -> bytes:
    """Open a small envelope held in memory; returns the content only if all of it authenticated."""
    out = io.BytesIO()
    open_stream(io.BytesIO(envelope), out, identities)
    return out.getvalue()
