"""Reading a return bundle: every byte checked, and the signatures, before anything is used.

``docs/BUNDLES.md`` §8 specifies the bytes (see ``portal.returnbundle`` for
the writer). The server reads the bundle from memory (about 110 bytes per
acknowledgement, about 65 KiB per reply); the signature of ``return.json``
is checked before it is even parsed. Standard library, PyNaCl (through
``portal.signing``) and ``portal.bundle`` only.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

from portal import signing
from portal.bundle import (
    BLOCK,
    DIGEST_PATTERN,
    ID_PATTERN,
    KEY_ID_PATTERN,
    MAGIC,
    REGULAR,
    TAR_VERSION,
    TYPE_NAMES,
    MalformedBundle,
    NotABundle,
    TruncatedBundle,
    exact_fields,
    load_document,
    parse_day,
    tar_header,
)
from portal.returnformat import (
    ACK_FIELDS,
    MAX_ACKNOWLEDGEMENTS,
    MAX_REPLIES,
    MAX_REPLY,
    MAX_RETURN,
    MAX_SIGNATURE_MEMBER,
    REPLY_FIELDS,
    RETURN_NAME,
    RETURN_TYPE,
    RETURN_VERSION,
    SIGNATURE_FIELDS,
    SIGNATURE_NAME,
    SIGNATURE_TYPE,
    TOP_FIELDS,
    Acknowledgement,
    BadSignature,
    Reply,
    ReturnBundle,
    b64,
    reply_member,
    reply_message,
)


def parse(data: bytes, signing_keys: Sequence[bytes]) -> ReturnBundle:
    """Check a whole return bundle held in memory; raises a typed ``BundleError``.

    The archive must be the ustar regular file ``return.json`` with the fixed
    header fields of BUNDLES.md §2, then ``return.sig`` holding a signature of
    it by one of ``signing_keys`` (checked before ``return.json`` is parsed),
    then exactly the ``replies/<id>.env`` members its manifest lists, in that
    order, each with the listed size and SHA-256 and a signature by the same
    key, then two zero blocks and only zero bytes after them.
    """
    if not data:
        raise NotABundle("the file is empty")
    if len(data) < BLOCK:
        raise NotABundle("the file is too short to be a return bundle")
    head = data[:BLOCK]
    if head[257:263] != MAGIC or head[263:265] != TAR_VERSION:
        raise NotABundle("this is not a return bundle (not a ustar tar archive)")
    name = head[:100].rstrip(b"\x00")
    kind = head[156:157]
    if kind != REGULAR:
        what = TYPE_NAMES.get(kind, f"a member of type {kind!r}")
        raise MalformedBundle(f"the archive holds {what}; a return bundle holds files only")
    digits = head[124:136].rstrip(b" \x00")
    if not digits or not set(digits) <= set(b"01234567"):
        raise MalformedBundle("the size of the first member is not an octal number")
    size = int(digits, 8)
    if size > MAX_RETURN:
        raise MalformedBundle(f"{RETURN_NAME} is larger than {MAX_RETURN} bytes")
    # The writer's header is fully determined by the name and the size: compare it whole.
    try:
        expected = tar_header(name.decode("ascii"), size)
    except (UnicodeDecodeError, ValueError):
        raise MalformedBundle("the first member's header is damaged") from None
    if head != expected:
        raise MalformedBundle(
            "the archive header is damaged or was not written by portal-desk"
            " (checksum or fixed fields)"
        )
    if name != RETURN_NAME.encode():
        raise MalformedBundle(f"the bundle must start with {RETURN_NAME}, not {name!r}")
    end = BLOCK + size + -size % BLOCK
    if len(data) < end + 2 * BLOCK:
        raise TruncatedBundle("the return bundle is cut short")
    if any(data[BLOCK + size : end]):
        raise MalformedBundle(f"{RETURN_NAME} is followed by data inside its padding")
    manifest = data[BLOCK : BLOCK + size]
    signer, end = _check_signature(data, end, manifest, signing_keys)
    day, acks, listed = _manifest(manifest)
    replies = []
    for entry in listed:
        envelope, end = _reply_envelope(data, end, entry)
        reply = Reply(entry.id, entry.thread_id, envelope, entry.signature)
        if not signing.verify(signer, reply_message(reply), reply.signature):
            raise BadSignature(f"the signature of reply {entry.id} does not verify")
        replies.append(reply)
    if len(data) < end + 2 * BLOCK:
        raise TruncatedBundle("the return bundle is cut short")
    if data[end : end + BLOCK] != bytes(BLOCK):
        raise MalformedBundle(
            "the archive holds a member its return.json does not list (only the listed"
            " replies may follow return.json)"
        )
    if any(data[end + BLOCK :]):
        raise MalformedBundle("there are data after the end of the archive")
    return ReturnBundle(day, acks, tuple(replies), signer)


def _check_signature(
    data: bytes, at: int, manifest: bytes, keys: Sequence[bytes]
) -> tuple[bytes, int]:
    """The key that signed ``manifest`` in the ``return.sig`` member at ``at``; where it ends."""
    if not keys:
        raise BadSignature("no signing key is configured to check the bundle with")
    if len(data) < at + BLOCK:
        raise TruncatedBundle("the return bundle is cut short")
    head = data[at : at + BLOCK]
    if head[:100].rstrip(b"\x00") != SIGNATURE_NAME.encode():
        raise BadSignature(
            f"the bundle is not signed: {SIGNATURE_NAME} must follow {RETURN_NAME} (an unsigned"
            " bundle, written by an older portal-desk, or altered)"
        )
    digits = head[124:136].rstrip(b" \x00")
    size = int(digits, 8) if digits and set(digits) <= set(b"01234567") else 0
    if not 0 < size <= MAX_SIGNATURE_MEMBER or head != tar_header(SIGNATURE_NAME, size):
        raise MalformedBundle(f"the header of {SIGNATURE_NAME} is damaged or of the wrong size")
    start = at + BLOCK
    end = start + size + -size % BLOCK
    if len(data) < end:
        raise TruncatedBundle("the return bundle is cut short")
    if any(data[start + size : end]):
        raise MalformedBundle(f"{SIGNATURE_NAME} is followed by data inside its padding")
    kid, signature = _signature_document(data[start : start + size])
    signer = next((k for k in keys if hmac.compare_digest(signing.key_id(k), kid)), None)
    if signer is None:
        raise BadSignature(
            f"the bundle is signed with a key this server does not know (key id {kid.hex()})"
        )
    if not signing.verify(signer, signing.return_message(manifest), signature):
        raise BadSignature(f"the signature of {RETURN_NAME} does not verify")
    return signer, end


def _signature_document(data: bytes) -> tuple[bytes, bytes]:
    doc = load_document(
        data, SIGNATURE_NAME, "return", SIGNATURE_TYPE, RETURN_VERSION, SIGNATURE_FIELDS
    )
    kid = bytes.fromhex(_match(doc["key_id"], KEY_ID_PATTERN, f"{SIGNATURE_NAME}: key_id"))
    return kid, _signature(doc["signature"], SIGNATURE_NAME)


@dataclass(frozen=True)
class _Listed:
    id: str
    thread_id: str
    sha256: bytes
    size: int
    signature: bytes


def _reply_envelope(data: bytes, at: int, entry: _Listed) -> tuple[bytes, int]:
    """The envelope of the reply ``entry`` lists, from the member at ``at``; and where it ends."""
    name = reply_member(entry.id)
    if len(data) < at + BLOCK:
        raise TruncatedBundle("the return bundle is cut short")
    if data[at : at + BLOCK] != tar_header(name, entry.size):
        raise MalformedBundle(
            f"the member for reply {entry.id} is missing, out of order, of another size than"
            " return.json lists, or its header is damaged"
        )
    start = at + BLOCK
    end = start + entry.size + -entry.size % BLOCK
    if len(data) < end:
        raise TruncatedBundle("the return bundle is cut short")
    envelope = data[start : start + entry.size]
    if any(data[start + entry.size : end]):
        raise MalformedBundle(f"{name} is followed by data inside its padding")
    if not hmac.compare_digest(hashlib.sha256(envelope).digest(), entry.sha256):
        raise MalformedBundle(f"{name} does not have the SHA-256 that return.json lists")
    return envelope, end


def parse_manifest(data: bytes) -> ReturnBundle:
    """Validate ``return.json`` alone (the replies it lists are not checked here)."""
    day, acks, _listed = _manifest(data)
    return ReturnBundle(day, acks)


def _manifest(data: bytes) -> tuple[dt.date, tuple[Acknowledgement, ...], tuple[_Listed, ...]]:
    obj = load_document(data, RETURN_NAME, "return", RETURN_TYPE, RETURN_VERSION, TOP_FIELDS)
    day = parse_day(obj["made_on"], f"{RETURN_NAME}: made_on")
    raw = obj["acknowledgements"]
    if not isinstance(raw, list) or len(raw) > MAX_ACKNOWLEDGEMENTS:
        raise MalformedBundle(f"{RETURN_NAME}: acknowledgements is not a list")
    acks = tuple(_ack(entry, n) for n, entry in enumerate(raw, 1))
    ids = [a.id for a in acks]
    if ids != sorted(set(ids)):
        raise MalformedBundle(
            f"{RETURN_NAME}: acknowledgements repeat an id or are not in id order"
        )
    raw = obj["replies"]
    if not isinstance(raw, list) or len(raw) > MAX_REPLIES:
        raise MalformedBundle(f"{RETURN_NAME}: replies is not a list of at most {MAX_REPLIES}")
    listed = tuple(_listed(entry, n) for n, entry in enumerate(raw, 1))
    ids = [r.id for r in listed]
    if ids != sorted(set(ids)):
        raise MalformedBundle(f"{RETURN_NAME}: replies repeat an id or are not in id order")
    return day, acks, listed


def _listed(raw: object, n: int) -> _Listed:
    where = f"{RETURN_NAME} reply {n}"
    if not isinstance(raw, dict):
        raise MalformedBundle(f"{where} is not an object")
    exact_fields(raw, REPLY_FIELDS, where)
    size = raw["size"]
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_REPLY:
        raise MalformedBundle(f"{where}: size is not a whole number from 1 to {MAX_REPLY}")
    return _Listed(
        _match(raw["id"], ID_PATTERN, f"{where}: id"),
        _match(raw["thread_id"], ID_PATTERN, f"{where}: thread_id"),
        bytes.fromhex(_match(raw["sha256"], DIGEST_PATTERN, f"{where}: sha256")),
        size,
        _signature(raw["signature"], where),
    )


def _ack(raw: object, n: int) -> Acknowledgement:
    where = f"{RETURN_NAME} acknowledgement {n}"
    if not isinstance(raw, dict):
        raise MalformedBundle(f"{where} is not an object")
    exact_fields(raw, ACK_FIELDS, where)
    return Acknowledgement(
        _match(raw["id"], ID_PATTERN, f"{where}: id"),
        bytes.fromhex(_match(raw["sha256"], DIGEST_PATTERN, f"{where}: sha256")),
    )


def _match(value: object, pattern: re.Pattern[str], where: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise MalformedBundle(f"{where} is not in the expected form")
    return value


def _signature(value: object, where: str) -> bytes:
    """A 64-byte signature in canonical base64."""
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != signing.SIGNATURE_SIZE or b64(raw) != value:
        raise MalformedBundle(f"{where}: signature is not 64 bytes in canonical base64")
    return raw
