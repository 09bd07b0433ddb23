"""The return bundle: the desk's acknowledgements, carried back to the server.

``docs/BUNDLES.md`` §8 specifies the bytes: a ustar archive with the same
fixed header fields as the export bundle (§2), holding ``return.json``, then
one member ``replies/<id>.env`` per sealed reply the manifest lists (in its
order), then the end-of-archive blocks. It holds ids, digests and sealed
replies, never plaintext. Standard library and ``portal.bundle`` only: the
desk writes it without any web module, and the server reads it from memory
(about 110 bytes per acknowledgement, about 65 KiB per reply).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from portal.bundle import (
    BLOCK,
    DIGEST_PATTERN,
    ID_PATTERN,
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

RETURN_TYPE = "reprisals-portal return"
RETURN_VERSION = 1
RETURN_NAME = "return.json"
MAX_RETURN = 32 << 20  # a million acknowledgements, with room to spare
MAX_ACKNOWLEDGEMENTS = 1_000_000
MAX_REPLY = 1 << 20  # a reply is at most 20,000 characters: its envelope is far smaller
MAX_REPLIES = 10_000
REPLY_DIR = "replies"
TOP_FIELDS = {"type", "version", "made_on", "acknowledgements", "replies"}
ACK_FIELDS = {"id", "sha256"}
REPLY_FIELDS = {"id", "thread_id", "sha256", "size"}


@dataclass(frozen=True, order=True)
class Acknowledgement:
    """The desk received item ``id`` as an envelope with this SHA-256, and opened it."""

    id: str
    sha256: bytes


@dataclass(frozen=True, order=True)
class Reply:
    """A reply sealed on the desk for thread ``thread_id``: the envelope's bytes as written."""

    id: str
    thread_id: str
    envelope: bytes

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.envelope).digest()


@dataclass(frozen=True)
class ReturnBundle:
    made_on: dt.date
    acknowledgements: tuple[Acknowledgement, ...]
    replies: tuple[Reply, ...] = ()


def reply_member(reply_id: str) -> str:
    """The archive name of a reply's envelope; always built from a checked id."""
    return f"{REPLY_DIR}/{reply_id}.env"


def manifest_bytes(
    made_on: dt.date, acks: Sequence[Acknowledgement], replies: Sequence[Reply] = ()
) -> bytes:
    """``return.json``, serialised as ``bundle.json`` is (BUNDLES.md §3.1)."""
    document = {
        "type": RETURN_TYPE,
        "version": RETURN_VERSION,
        "made_on": made_on.isoformat(),
        "acknowledgements": [{"id": a.id, "sha256": a.sha256.hex()} for a in sorted(acks)],
        "replies": [
            {
                "id": r.id,
                "thread_id": r.thread_id,
                "sha256": r.sha256.hex(),
                "size": len(r.envelope),
            }
            for r in sorted(replies)
        ],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


def write_return(
    acks: Sequence[Acknowledgement],
    out: BinaryIO,
    made_on: dt.date,
    replies: Sequence[Reply] = (),
) -> None:
    """Write the return bundle acknowledging ``acks`` and carrying ``replies`` to ``out``."""
    data = _archive(manifest_bytes(made_on, acks, replies), sorted(replies))
    parse(data)  # never write what a reader would refuse
    out.write(data)


def _archive(manifest: bytes, replies: Sequence[Reply] = ()) -> bytes:
    parts = [tar_header(RETURN_NAME, len(manifest)), manifest, bytes(-len(manifest) % BLOCK)]
    for reply in replies:
        size = len(reply.envelope)
        parts += [tar_header(reply_member(reply.id), size), reply.envelope, bytes(-size % BLOCK)]
    parts.append(bytes(2 * BLOCK))
    return b"".join(parts)


def parse(data: bytes) -> ReturnBundle:
    """Check a whole return bundle held in memory; raises a typed ``BundleError``.

    The archive must be the ustar regular file ``return.json`` with the fixed
    header fields of BUNDLES.md §2, then exactly the ``replies/<id>.env``
    members its manifest lists, in that order, each with the listed size and
    SHA-256, then two zero blocks and only zero bytes after them.
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
    day, acks, listed = _manifest(data[BLOCK : BLOCK + size])
    replies = []
    for entry in listed:
        envelope, end = _reply_envelope(data, end, entry)
        replies.append(Reply(entry.id, entry.thread_id, envelope))
    if len(data) < end + 2 * BLOCK:
        raise TruncatedBundle("the return bundle is cut short")
    if data[end : end + BLOCK] != bytes(BLOCK):
        raise MalformedBundle(
            "the archive holds a member its return.json does not list (only the listed"
            " replies may follow return.json)"
        )
    if any(data[end + BLOCK :]):
        raise MalformedBundle("there are data after the end of the archive")
    return ReturnBundle(day, acks, tuple(replies))


@dataclass(frozen=True)
class _Listed:
    id: str
    thread_id: str
    sha256: bytes
    size: int


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
