"""The return bundle: the desk's acknowledgements, carried back to the server.

``docs/BUNDLES.md`` §8 specifies the bytes: a ustar archive with the same
fixed header fields as the export bundle (§2), holding ``return.json`` and
nothing else while replies are not built, then the end-of-archive blocks.
It holds ids and digests only, never plaintext. Standard library and
``portal.bundle`` only: the desk writes it without any web module, and the
server reads it from memory (it is small: about 110 bytes per item).
"""

from __future__ import annotations

import datetime as dt
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
TOP_FIELDS = {"type", "version", "made_on", "acknowledgements", "replies"}
ACK_FIELDS = {"id", "sha256"}


@dataclass(frozen=True, order=True)
class Acknowledgement:
    """The desk received item ``id`` as an envelope with this SHA-256, and opened it."""

    id: str
    sha256: bytes


@dataclass(frozen=True)
class ReturnBundle:
    made_on: dt.date
    acknowledgements: tuple[Acknowledgement, ...]


def manifest_bytes(made_on: dt.date, acks: Sequence[Acknowledgement]) -> bytes:
    """``return.json``, serialised as ``bundle.json`` is (BUNDLES.md §3.1)."""
    document = {
        "type": RETURN_TYPE,
        "version": RETURN_VERSION,
        "made_on": made_on.isoformat(),
        "acknowledgements": [{"id": a.id, "sha256": a.sha256.hex()} for a in sorted(acks)],
        "replies": [],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


def write_return(acks: Sequence[Acknowledgement], out: BinaryIO, made_on: dt.date) -> None:
    """Write the return bundle acknowledging ``acks`` (sorted by id) to ``out``."""
    manifest = manifest_bytes(made_on, acks)
    parse(_archive(manifest))  # never write what a reader would refuse
    out.write(_archive(manifest))


def _archive(manifest: bytes) -> bytes:
    padding = bytes(-len(manifest) % BLOCK)
    return tar_header(RETURN_NAME, len(manifest)) + manifest + padding + bytes(2 * BLOCK)


def parse(data: bytes) -> ReturnBundle:
    """Check a whole return bundle held in memory; raises a typed ``BundleError``.

    The archive must be exactly one ustar regular file ``return.json`` with
    the fixed header fields of BUNDLES.md §2, then two zero blocks and only
    zero bytes after them.
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
    if data[end : end + BLOCK] != bytes(BLOCK):
        raise MalformedBundle(
            "the archive holds a member after return.json; this version carries no replies"
        )
    if any(data[end + BLOCK :]):
        raise MalformedBundle("there are data after the end of the archive")
    return parse_manifest(data[BLOCK : BLOCK + size])


def parse_manifest(data: bytes) -> ReturnBundle:
    """Validate ``return.json``."""
    obj = load_document(data, RETURN_NAME, "return", RETURN_TYPE, RETURN_VERSION, TOP_FIELDS)
    day = parse_day(obj["made_on"], f"{RETURN_NAME}: made_on")
    if obj["replies"] != []:
        raise MalformedBundle(f"{RETURN_NAME}: this version of the portal carries no replies")
    raw = obj["acknowledgements"]
    if not isinstance(raw, list) or len(raw) > MAX_ACKNOWLEDGEMENTS:
        raise MalformedBundle(f"{RETURN_NAME}: acknowledgements is not a list")
    acks = tuple(_ack(entry, n) for n, entry in enumerate(raw, 1))
    ids = [a.id for a in acks]
    if ids != sorted(set(ids)):
        raise MalformedBundle(
            f"{RETURN_NAME}: acknowledgements repeat an id or are not in id order"
        )
    return ReturnBundle(day, acks)


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
