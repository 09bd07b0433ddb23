"""The export bundle: the server's envelopes and their metadata, in one tar file for the desk.

``docs/BUNDLES.md`` specifies the bytes. The writer streams every envelope in
blocks (constant memory); the reader checks the whole archive's structure
before anything is used, never takes a path from it, and verifies each
envelope's digest while it is read. Standard library and ``portal.envelope``
only: the desk reads bundles without any web or database module.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO

from portal import envelope, strictjson

BUNDLE_TYPE = "reprisals-portal export"
BUNDLE_VERSION = 1
MANIFEST_NAME = "bundle.json"
ENVELOPE_DIR = "envelopes"
BLOCK = 512
COPY_BLOCK = 1 << 20
MAX_MANIFEST = 32 << 20  # about 100,000 items; far above any real backlog
MAX_MEMBER = 8**11 - 1  # the largest size eleven octal digits hold (ustar)
MAX_ITEMS = 1_000_000
MODE = b"0000600\x00"
ZERO_OCTAL = b"0000000\x00"
MTIME = b"00000000000\x00"
MAGIC = b"ustar\x00"
TAR_VERSION = b"00"
REGULAR = b"0"
SEALED_BY = ("browser", "server")
ID_PATTERN = re.compile(r"[0-9a-f]{32}")
KEY_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
DIGEST_PATTERN = re.compile(r"[0-9a-f]{64}")
DAY_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
TOP_FIELDS = {"type", "version", "made_on", "items"}
ITEM_FIELDS = {
    "id",
    "thread_id",
    "received_on",
    "sealed_by",
    "padded_size",
    "envelope_size",
    "recipient_key_ids",
    "reply_public_key",
    "sha256",
}
TYPE_NAMES = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"5": "a directory",
    b"6": "a named pipe",
    b"7": "a contiguous file",
    b"x": "a pax extended header",
    b"g": "a pax global header",
    b"L": "a GNU long name",
    b"K": "a GNU long link name",
}


class BundleError(Exception):
    """Base class: ``str(err)`` says what is wrong, ``err.hint`` what to do about it."""

    hint = "Export the bundle again from the staff interface and copy it again."

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class NotABundle(BundleError):
    hint = "Give the export bundle downloaded from the staff interface, not another file."


class UnsupportedBundleVersion(BundleError):
    hint = "Upgrade portal-desk to the version the server runs."


class MalformedBundle(BundleError):
    hint = (
        "The bundle was altered or damaged, or not written by the portal:"
        " export it again and do not trust this copy."
    )


class TruncatedBundle(BundleError):
    hint = "The bundle is incomplete: copy it again (check the USB stick's free space)."


class DigestMismatch(BundleError):
    hint = (
        "This envelope was altered or damaged on its way from the server: it will not be"
        " acknowledged, so the server keeps it. Export and import again."
    )


class ExportError(BundleError):
    hint = "Check the server's data directory and database, then export again."


@dataclass(frozen=True)
class Entry:
    """One stored submission to export, before its envelope has been read."""

    id: str
    thread_id: str
    received_on: dt.date
    sealed_by: str
    padded_size: int
    envelope_size: int
    recipient_key_ids: tuple[bytes, ...]
    reply_public_key: bytes


@dataclass(frozen=True)
class Item(Entry):
    """One listed item of a bundle, with the SHA-256 of its envelope file."""

    sha256: bytes = b""

    @property
    def member_name(self) -> str:
        return member_name(self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "thread_id": self.thread_id,
            "received_on": self.received_on.isoformat(),
            "sealed_by": self.sealed_by,
            "padded_size": self.padded_size,
            "envelope_size": self.envelope_size,
            "recipient_key_ids": [k.hex() for k in self.recipient_key_ids],
            "reply_public_key": base64.b64encode(self.reply_public_key).decode("ascii"),
            "sha256": self.sha256.hex(),
        }


def member_name(item_id: str) -> str:
    """The archive name of an item's envelope; always built from a checked id."""
    return f"{ENVELOPE_DIR}/{item_id}.env"


def manifest_bytes(made_on: dt.date, items: Sequence[Item]) -> bytes:
    """``bundle.json``: compact, keys sorted, ASCII only, one final line feed."""
    document = {
        "type": BUNDLE_TYPE,
        "version": BUNDLE_VERSION,
        "made_on": made_on.isoformat(),
        "items": [item.to_json() for item in items],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


# Writing ------------------------------------------------------------------------------


def tar_header(name: str, size: int) -> bytes:
    """The 512-byte ustar header of a regular file, with the fixed fields of BUNDLES.md §2."""
    encoded = name.encode("ascii")
    if len(encoded) > 99 or not 0 <= size <= MAX_MEMBER:
        raise ValueError("the name or the size does not fit a ustar header")
    head = bytearray(BLOCK)
    head[0 : len(encoded)] = encoded
    head[100:108] = MODE
    head[108:116] = ZERO_OCTAL
    head[116:124] = ZERO_OCTAL
    head[124:136] = b"%011o\x00" % size
    head[136:148] = MTIME
    head[148:156] = b" " * 8
    head[156:157] = REGULAR
    head[257:263] = MAGIC
    head[263:265] = TAR_VERSION
    head[148:156] = b"%06o\x00 " % sum(head)
    return bytes(head)


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


def write_export(
    entries: Sequence[Entry],
    open_file: Callable[[str], BinaryIO],
    out: BinaryIO,
    made_on: dt.date,
) -> tuple[Item, ...]:
    """Write the bundle of ``entries`` (in that order) to ``out``; return the listed items.

    ``open_file(id)`` opens an entry's envelope file. Each file is read twice,
    in blocks: once for its digest (``bundle.json`` comes first and lists
    them) and once to copy it, hashed again, so a file that changed between
    the two passes raises :class:`ExportError` instead of exporting a bundle
    the desk would refuse. Memory use does not depend on the sizes.
    """
    items = tuple(Item(**vars(e), sha256=_digest(e, open_file)) for e in entries)
    manifest = manifest_bytes(made_on, items)
    if len(manifest) > MAX_MANIFEST:
        raise ExportError(f"{len(items)} items are too many for one bundle", "Export fewer items.")
    try:
        parse_manifest(manifest)  # never write what a reader would refuse
    except BundleError as err:
        raise ExportError(f"the server's records cannot be exported: {err}") from None
    out.write(tar_header(MANIFEST_NAME, len(manifest)))
    out.write(manifest + _padding(len(manifest)))
    for item in items:
        out.write(tar_header(item.member_name, item.envelope_size))
        with open_file(item.id) as src:
            if _copy(src, out, item.envelope_size) != item.sha256:
                raise ExportError(f"the envelope of {item.id} changed while it was exported")
        out.write(_padding(item.envelope_size))
    out.write(bytes(2 * BLOCK))
    return items


def _digest(entry: Entry, open_file: Callable[[str], BinaryIO]) -> bytes:
    with open_file(entry.id) as src:
        return _copy(src, None, entry.envelope_size, entry.id)


def _copy(src: BinaryIO, dst: BinaryIO | None, size: int, item_id: str = "") -> bytes:
    """Copy exactly ``size`` bytes (refusing a file of another size); return their SHA-256."""
    digest = hashlib.sha256()
    left = size
    while left:
        block = src.read(min(COPY_BLOCK, left))
        if not block:
            break
        digest.update(block)
        if dst is not None:
            dst.write(block)
        left -= len(block)
    if left or src.read(1):
        raise ExportError(f"the envelope file of {item_id or 'an item'} is not {size} bytes long")
    return digest.digest()


# Reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    name: str
    offset: int  # of the data
    size: int


class Bundle(AbstractContextManager["Bundle"]):
    """A structurally valid bundle: its day, its items, and a way to read each envelope.

    Made by :func:`read_export`. Holds the file open until closed, and reads
    envelopes from that open file, so renaming or replacing the path later
    changes nothing.
    """

    def __init__(self, fd: int, made_on: dt.date, items: tuple[Item, ...], offsets: list[int]):
        self._fd = fd
        self.made_on = made_on
        self.items = items
        self._offsets = dict(zip((i.id for i in items), offsets, strict=True))

    def open(self, item: Item) -> BinaryIO:
        """The item's envelope as a stream; its last read raises :class:`DigestMismatch`
        if the bytes are not those ``bundle.json`` lists."""
        raw = _ItemReader(self._fd, self._offsets[item.id], item.envelope_size, item)
        return io.BufferedReader(raw, COPY_BLOCK)

    def read(self, item: Item) -> bytes:
        """The item's whole envelope in memory, verified (for small items only)."""
        with self.open(item) as stream:
            return stream.read()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _ItemReader(io.RawIOBase):
    def __init__(self, fd: int, offset: int, size: int, item: Item) -> None:
        super().__init__()
        self._fd, self._at, self._left, self._item = fd, offset, size, item
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self._left:
            return 0
        data = os.pread(self._fd, min(len(view), self._left), self._at)
        if not data:
            raise TruncatedBundle("the bundle file became shorter while it was read")
        view[: len(data)] = data
        self._digest.update(data)
        self._at += len(data)
        self._left -= len(data)
        if not self._left and self._digest.digest() != self._item.sha256:
            raise DigestMismatch(
                f"the envelope of item {self._item.id} does not match its SHA-256 in bundle.json"
            )
        return len(data)


def read_export(path: str | os.PathLike[str]) -> Bundle:
    """Open ``path`` and check its whole structure; returns a :class:`Bundle` to close.

    Refuses (with a typed :class:`BundleError`) anything but ``bundle.json``
    followed by exactly the listed envelopes, in order, as ustar regular
    files of the listed sizes, then the end-of-archive blocks. Envelope
    digests are checked as each is read through :meth:`Bundle.open`.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotABundle(f"{os.fspath(path)} is not a regular file")
        made_on, items, offsets = _parse(fd, info.st_size)
    except BaseException:
        os.close(fd)
        raise
    return Bundle(fd, made_on, items, offsets)


def _parse(fd: int, length: int) -> tuple[dt.date, tuple[Item, ...], list[int]]:
    if length == 0:
        raise NotABundle("the file is empty")
    first = _member(fd, 0, length, MAX_MANIFEST, first=True)
    if first is None or first.name != MANIFEST_NAME:
        found = "nothing" if first is None else repr(first.name)
        raise MalformedBundle(f"the bundle must start with {MANIFEST_NAME}, not {found}")
    made_on, items = parse_manifest(os.pread(fd, first.size, first.offset))
    at = first.offset + first.size + -first.size % BLOCK
    offsets = []
    for item in items:
        member = _member(fd, at, length, item.envelope_size)
        if member is None:
            raise TruncatedBundle(f"the bundle ends before the envelope of item {item.id}")
        if member.name != item.member_name:
            raise MalformedBundle(
                f"expected {item.member_name} but found {member.name!r}:"
                " the archive holds members that bundle.json does not list, or not in its order"
            )
        if member.size != item.envelope_size:
            raise MalformedBundle(
                f"{member.name} is {member.size} bytes but bundle.json says {item.envelope_size}"
            )
        offsets.append(member.offset)
        at = member.offset + member.size + -member.size % BLOCK
    extra = _member(fd, at, length, MAX_MEMBER)
    if extra is not None:
        raise MalformedBundle(
            f"the archive holds a member bundle.json does not list: {extra.name!r}"
        )
    return made_on, items, offsets


def _member(fd: int, at: int, length: int, limit: int, first: bool = False) -> _Member | None:
    """The member whose header is at ``at``, or ``None`` at a valid end of archive.

    A member larger than ``limit`` (the listed size of the envelope expected
    there, or the manifest limit) is refused before anything of it is read.
    """
    head = os.pread(fd, BLOCK, at)
    if len(head) < BLOCK:
        if first:
            raise NotABundle("the file is too short to be a tar archive")
        raise TruncatedBundle("the bundle is cut short: the end-of-archive marker is missing")
    if head == bytes(BLOCK):
        _check_end(fd, at, length)
        return None
    if head[257:263] != MAGIC or head[263:265] != TAR_VERSION:
        if first:
            raise NotABundle("this is not an export bundle (not a ustar tar archive)")
        raise MalformedBundle(f"the archive header at byte {at} is not a ustar header")
    _check_sum(head, at)
    name = _name(head)
    kind = head[156:157]
    if kind != REGULAR:
        what = TYPE_NAMES.get(kind, f"a member of type {kind!r}")
        raise MalformedBundle(f"the archive holds {what} ({name!r}); a bundle has files only")
    if any(head[157:257]) or any(head[345:500]):
        raise MalformedBundle(f"the header of {name!r} has a link name or a name prefix")
    size = _octal(head[124:136], name)
    if size > limit:
        raise MalformedBundle(f"{name!r} declares {size} bytes, more than the {limit} allowed")
    if at + BLOCK + size > length:
        raise TruncatedBundle(f"the bundle is cut short inside {name!r}")
    return _Member(name, at + BLOCK, size)


def _check_end(fd: int, at: int, length: int) -> None:
    """Two zero blocks end the archive; only zero bytes may follow (record padding)."""
    second = os.pread(fd, BLOCK, at + BLOCK)
    if second != bytes(BLOCK):
        raise TruncatedBundle("the bundle is cut short: the end-of-archive marker is incomplete")
    pos = at + 2 * BLOCK
    while pos < length:
        block = os.pread(fd, COPY_BLOCK, pos)
        if block.strip(b"\x00"):
            raise MalformedBundle("there are data after the end of the archive")
        pos += len(block)


def _check_sum(head: bytes, at: int) -> None:
    declared = head[148:156].rstrip(b" \x00")
    expected = sum(head[:148]) + 8 * 32 + sum(head[156:])
    if not declared or not set(declared) <= set(b"01234567") or int(declared, 8) != expected:
        raise MalformedBundle(f"the archive header at byte {at} is damaged (checksum)")


def _name(head: bytes) -> str:
    raw, _, rest = head[:100].partition(b"\x00")
    if any(rest):
        raise MalformedBundle("an archive member name is not NUL-terminated")
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedBundle("an archive member name is not ASCII") from None
    if name.startswith("/"):
        raise MalformedBundle(f"the archive holds an absolute path {name!r}")
    if ".." in name.split("/"):
        raise MalformedBundle(f"the archive holds a path that climbs out ({name!r})")
    if not name.isprintable():
        raise MalformedBundle("an archive member name holds control characters")
    return name


def _octal(field: bytes, name: str) -> int:
    digits = field.rstrip(b" \x00")
    if not digits or not set(digits) <= set(b"01234567"):
        raise MalformedBundle(f"the size of {name!r} is not an octal number")
    return int(digits, 8)


def load_document(
    data: bytes, name: str, kind: str, doc_type: str, version: int, fields: set[str]
) -> dict[str, Any]:
    """Parse a bundle's JSON member ``name``: strict JSON, its type, version and exact fields.

    Shared by the export and return bundles; ``kind`` names the bundle in messages.
    """
    try:
        obj = strictjson.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedBundle(f"{name} is not UTF-8 text") from None
    except strictjson.StrictJSONError as err:
        raise MalformedBundle(f"{name} is {err}") from None
    if not isinstance(obj, dict) or obj.get("type") != doc_type:
        raise NotABundle(f"{name} is not the manifest of a portal {kind} bundle")
    found = obj.get("version")
    if found != version or isinstance(found, bool):
        raise UnsupportedBundleVersion(f"{kind} bundle version {found!r} is not supported")
    exact_fields(obj, fields, name)
    return obj


def parse_manifest(data: bytes) -> tuple[dt.date, tuple[Item, ...]]:
    """Validate ``bundle.json``; returns the day it was made and its items."""
    obj = load_document(data, MANIFEST_NAME, "export", BUNDLE_TYPE, BUNDLE_VERSION, TOP_FIELDS)
    made_on = parse_day(obj["made_on"], "made_on")
    raw_items = obj["items"]
    if not isinstance(raw_items, list) or len(raw_items) > MAX_ITEMS:
        raise MalformedBundle(f"{MANIFEST_NAME}: items is not a list of items")
    items = tuple(_item(raw, n) for n, raw in enumerate(raw_items, 1))
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise MalformedBundle(f"{MANIFEST_NAME} lists the same item id twice")
    return made_on, items


def exact_fields(obj: dict[str, Any], wanted: set[str], where: str) -> None:
    missing, extra = wanted - obj.keys(), obj.keys() - wanted
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(sorted(missing)))
        if extra:
            parts.append("unexpected " + ", ".join(sorted(extra)))
        raise MalformedBundle(f"{where}: {'; '.join(parts)}")


def _item(raw: object, n: int) -> Item:
    where = f"{MANIFEST_NAME} item {n}"
    if not isinstance(raw, dict):
        raise MalformedBundle(f"{where} is not an object")
    exact_fields(raw, ITEM_FIELDS, where)
    item_id = _match(raw["id"], ID_PATTERN, f"{where}: id")
    thread_id = _match(raw["thread_id"], ID_PATTERN, f"{where}: thread_id")
    if raw["sealed_by"] not in SEALED_BY:
        raise MalformedBundle(f"{where}: sealed_by must be browser or server")
    padded = _integer(raw["padded_size"], f"{where}: padded_size", envelope.MAX_PADDED_SIZE)
    size = _integer(raw["envelope_size"], f"{where}: envelope_size", MAX_MEMBER)
    key_ids = raw["recipient_key_ids"]
    if not isinstance(key_ids, list) or not 1 <= len(key_ids) <= envelope.MAX_RECIPIENTS:
        raise MalformedBundle(f"{where}: recipient_key_ids must list 1 to 16 key ids")
    ids = tuple(bytes.fromhex(_match(k, KEY_ID_PATTERN, f"{where}: key id")) for k in key_ids)
    if len(set(ids)) != len(ids):
        raise MalformedBundle(f"{where}: recipient_key_ids repeats a key id")
    tags = envelope.TAG_SIZE * envelope.chunk_count(padded)
    expected = envelope.header_size(len(ids)) + padded + tags
    if size != expected:
        raise MalformedBundle(
            f"{where}: envelope_size {size} does not fit padded_size {padded}"
            f" and {len(ids)} recipients (expected {expected})"
        )
    return Item(
        id=item_id,
        thread_id=thread_id,
        received_on=parse_day(raw["received_on"], f"{where}: received_on"),
        sealed_by=raw["sealed_by"],
        padded_size=padded,
        envelope_size=size,
        recipient_key_ids=ids,
        reply_public_key=_reply_key(raw["reply_public_key"], where),
        sha256=bytes.fromhex(_match(raw["sha256"], DIGEST_PATTERN, f"{where}: sha256")),
    )


def _match(value: object, pattern: re.Pattern[str], where: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise MalformedBundle(f"{where} is not in the expected form")
    return value


def _integer(value: object, where: str, limit: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= limit:
        raise MalformedBundle(f"{where} is not a size between 1 and {limit}")
    return value


def parse_day(value: object, where: str) -> dt.date:
    if isinstance(value, str) and DAY_PATTERN.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise MalformedBundle(f"{where} is not a day (YYYY-MM-DD)")


def _reply_key(value: object, where: str) -> bytes:
    try:
        if isinstance(value, str) and len(value) == 44:
            raw = base64.b64decode(value, validate=True)
            if len(raw) == 32 and base64.b64encode(raw).decode() == value:
                return raw
    except (binascii.Error, ValueError):
        pass
    raise MalformedBundle(f"{where}: reply_public_key is not 32 bytes in canonical base64")


def iter_items(bundle: Bundle) -> Iterator[tuple[Item, BinaryIO]]:
    """Each item with its envelope stream, in the listed order (streams closed after use)."""
    for item in bundle.items:
        with bundle.open(item) as stream:
            yield item, stream
