"""The attachment content (``docs/FORMAT.md`` §15.6): one file, sealed in its own envelope.

The content is ``"UNRPFILE"`` (8 bytes), the file's size S (8 bytes, big
endian), the S file bytes, then the metadata: compact JSON with the file's
id, media type, name, size and SHA-256. Because the SHA-256 has a fixed
length, the content length is known before the file is read, so a sealer
hashes while it reads and writes the metadata last: one pass, constant
memory (:class:`Encoder`, with ``envelope.seal_stream``). A reader writes the
file bytes out while hashing them and checks the metadata only at the end
(:class:`Decoder`); it must discard what it wrote if :meth:`Decoder.finish`
raises. The name is the submitter's and UNTRUSTED: never a path.

Standard library and ``portal.strictjson`` only: the desk and the server use it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from portal import strictjson

MAGIC = b"UNRPFILE"
PREFIX_SIZE = 16  # the magic and S
MIN_METADATA = 2
MAX_METADATA = 65536
MAX_NAME = 1000  # code points
MAX_MEDIA_TYPE = 255
MAX_LISTED = 64  # entries in a report's ``attachments`` member
ATTACHMENT_TYPE = "reprisal-attachment"
ATTACHMENT_VERSION = 1
UNNAMED = "unnamed"
LISTED_MEMBERS = frozenset({"id", "media_type", "name", "sha256", "size"})
MEMBERS = LISTED_MEMBERS | {"type", "version"}
ID_PATTERN = re.compile(r"[0-9a-f]{32}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
_PLACEHOLDER_SHA256 = "0" * 64
_BLOCK = 1 << 20


class AttachmentError(Exception):
    """Base class: ``str(err)`` says what is wrong, ``err.hint`` what to do about it."""

    hint = "The attachment cannot be used; nothing of it was kept."

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class NotAnAttachment(AttachmentError):
    hint = "This envelope holds something else (a report?); open it as that."


class MalformedAttachment(AttachmentError):
    hint = "The sealer is faulty or hostile: nothing of this attachment was kept."


class HashMismatch(AttachmentError):
    hint = "The file is not the one the sealer hashed: nothing of it was kept. Ask for it again."


@dataclass(frozen=True)
class Metadata:
    """What an attachment says about its file, checked (the name is still untrusted text)."""

    id: str
    media_type: str
    name: str
    sha256: str
    size: int

    def listing(self) -> dict[str, Any]:
        """The entry for the report document's ``attachments`` member (FORMAT.md §15.1)."""
        return {
            "id": self.id,
            "media_type": self.media_type,
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
        }

    def to_json(self) -> dict[str, Any]:
        """The whole metadata object sealed after the file bytes."""
        return {**self.listing(), "type": ATTACHMENT_TYPE, "version": ATTACHMENT_VERSION}


def new_id() -> str:
    """A fresh attachment id: 128 random bits as 32 lower-case hex digits."""
    return secrets.token_hex(16)


def clean_name(name: str) -> str:
    """The name a sealer records: lone surrogates replaced by U+FFFD (as a browser's
    ``File.name`` has them), cut to 1000 code points, ``"unnamed"`` if empty."""
    text = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in name[:MAX_NAME])
    return text or UNNAMED


def clean_media_type(media_type: str) -> str:
    """The media type a sealer records: ``""`` when it is over 255 characters (a shortened
    type would name another type) or holds a lone surrogate."""
    if len(media_type) > MAX_MEDIA_TYPE or _bad_text(media_type):
        return ""
    return media_type


def encode_metadata(metadata: Metadata) -> bytes:
    """The metadata bytes: keys sorted, no white space, UTF-8 with nothing escaped beyond JSON's
    own rules (``JSON.stringify`` gives the same bytes)."""
    text = json.dumps(metadata.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def content_length(size: int, *, file_id: str, media_type: str, name: str) -> int:
    """L = 16 + S + M, known before the file is read (``name`` and ``media_type`` as recorded)."""
    placeholder = Metadata(file_id, media_type, name, _PLACEHOLDER_SHA256, size)
    return PREFIX_SIZE + size + len(encode_metadata(placeholder))


class Encoder:
    """The content of one attachment, as an iterable of bytes for ``envelope.seal_stream``.

    ``src`` (a binary file or an iterable of bytes) must give exactly
    ``size`` bytes; they are hashed as they pass, and the metadata follows
    them. ``length`` is the content length to give ``seal_stream``, and
    :attr:`metadata` (complete once the content has been consumed) is what
    the report document lists. Raises :class:`ValueError` if ``src`` is
    not ``size`` long; the envelope written so far must then be discarded.
    """

    def __init__(
        self,
        src: BinaryIO | Iterable[bytes],
        size: int,
        *,
        name: str,
        media_type: str,
        file_id: str | None = None,
    ) -> None:
        if size < 0:
            raise ValueError("size must not be negative")
        self.file_id = file_id if file_id is not None else new_id()
        if not ID_PATTERN.fullmatch(self.file_id):
            raise ValueError("an attachment id is 32 lower-case hex digits")
        self.name, self.media_type = clean_name(name), clean_media_type(media_type)
        self.size = size
        self.length = content_length(
            size, file_id=self.file_id, media_type=self.media_type, name=self.name
        )
        self._src = src
        self._metadata: Metadata | None = None

    @property
    def metadata(self) -> Metadata:
        if self._metadata is None:
            raise RuntimeError("the attachment's content has not been read to its end yet")
        return self._metadata

    def __iter__(self) -> Iterator[bytes]:
        yield MAGIC + self.size.to_bytes(8, "big")
        digest, seen = hashlib.sha256(), 0
        for block in _blocks(self._src):
            seen += len(block)
            if seen > self.size:
                raise ValueError(f"the file is longer than the {self.size} bytes declared")
            digest.update(block)
            yield block
        if seen != self.size:
            raise ValueError(f"the file ended after {seen} of the {self.size} bytes declared")
        meta = Metadata(self.file_id, self.media_type, self.name, digest.hexdigest(), self.size)
        encoded = encode_metadata(meta)
        if PREFIX_SIZE + self.size + len(encoded) != self.length:
            raise RuntimeError("the metadata changed length")  # sha256 has a fixed length
        self._metadata = meta
        yield encoded


def _blocks(src: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(src, "read", None)
    if read is None:
        yield from src
        return
    while block := read(_BLOCK):
        yield block


class Decoder:
    """A writable sink for a decrypted attachment content (``envelope.open_stream``'s ``dst``).

    The file bytes go to ``dst`` (or nowhere, with ``None``) as they come,
    hashed on the way; the metadata is kept (at most 64 KiB) and checked by
    :meth:`finish`. Raises :class:`AttachmentError` as soon as the content
    cannot be an attachment. Whatever reached ``dst`` is unverified until
    :meth:`finish` returns: the caller must discard it on any error.
    """

    def __init__(self, dst: BinaryIO | None) -> None:
        self._dst = dst
        self._prefix = bytearray()
        self._file_left = -1  # unknown until the prefix is in
        self._digest = hashlib.sha256()
        self._metadata = bytearray()
        self.file_size = -1

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        if self._file_left < 0:
            take = min(PREFIX_SIZE - len(self._prefix), len(view))
            self._prefix += view[:take]
            view = view[take:]
            if len(self._prefix) < PREFIX_SIZE:
                return len(data)
            self._start()
        if self._file_left:
            take = min(self._file_left, len(view))
            self._digest.update(view[:take])
            if self._dst is not None:
                self._dst.write(view[:take])
            self._file_left -= take
            view = view[take:]
        if len(self._metadata) + len(view) > MAX_METADATA:
            raise MalformedAttachment(f"the metadata is longer than {MAX_METADATA} bytes")
        self._metadata += view
        return len(data)

    def _start(self) -> None:
        if self._prefix[:8] != MAGIC:
            raise NotAnAttachment("the content does not start with UNRPFILE: not an attachment")
        self.file_size = self._file_left = int.from_bytes(self._prefix[8:], "big")

    def finish(self) -> Metadata:
        """Check the end of the content: the metadata, the size and the SHA-256."""
        if self._file_left < 0:
            if self._prefix and not MAGIC.startswith(bytes(self._prefix[:8])):
                raise NotAnAttachment("the content does not start with UNRPFILE: not an attachment")
            raise MalformedAttachment(f"the content is {len(self._prefix)} bytes: too short")
        if self._file_left:
            raise MalformedAttachment(
                f"the content ends {self._file_left} bytes before the end of the"
                f" {self.file_size}-byte file it declares"
            )
        if len(self._metadata) < MIN_METADATA:
            raise MalformedAttachment(f"the metadata is {len(self._metadata)} bytes: too short")
        meta = check_metadata(parse_json(bytes(self._metadata), "the metadata"), self.file_size)
        if not secrets.compare_digest(meta.sha256, self._digest.hexdigest()):
            raise HashMismatch("the file's SHA-256 is not the one its metadata gives")
        return meta


def decode(src: BinaryIO, dst: BinaryIO | None) -> Metadata:
    """Read a whole decrypted content from ``src``, file bytes to ``dst``; see :class:`Decoder`."""
    decoder = Decoder(dst)
    while block := src.read(_BLOCK):
        decoder.write(block)
    return decoder.finish()


def parse_json(data: bytes, what: str) -> object:
    """Strict JSON from UTF-8 bytes, or :class:`MalformedAttachment`."""
    try:
        return strictjson.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedAttachment(f"{what} is not UTF-8 text") from None
    except strictjson.StrictJSONError as err:
        raise MalformedAttachment(f"{what} is {err}") from None


def check_metadata(obj: object, size: int) -> Metadata:
    """The metadata object checked strictly against the file size S of the framing."""
    if not isinstance(obj, dict):
        raise MalformedAttachment("the metadata is not a JSON object")
    _exact_members(obj, MEMBERS, "the metadata")
    if obj["type"] != ATTACHMENT_TYPE:
        raise MalformedAttachment(f"the metadata's type is not {ATTACHMENT_TYPE!r}")
    if obj["version"] != ATTACHMENT_VERSION or isinstance(obj["version"], bool):
        hint = "Upgrade portal-desk to the version the server runs."
        raise MalformedAttachment(f"attachment version {obj['version']!r} is unknown", hint)
    meta = _entry(obj, "the metadata")
    if meta.size != size:
        raise MalformedAttachment(
            f"the metadata gives a size of {meta.size} bytes but the file has {size}"
        )
    return meta


def check_listing(value: object) -> tuple[Metadata, ...]:
    """A report document's ``attachments`` member: 1 to 64 entries with distinct ids."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LISTED:
        raise MalformedAttachment(f"attachments is not a list of 1 to {MAX_LISTED} entries")
    entries = []
    for n, raw in enumerate(value, 1):
        if not isinstance(raw, dict):
            raise MalformedAttachment(f"attachments entry {n} is not an object")
        _exact_members(raw, LISTED_MEMBERS, f"attachments entry {n}")
        entries.append(_entry(raw, f"attachments entry {n}"))
    if len({e.id for e in entries}) != len(entries):
        raise MalformedAttachment("attachments lists the same id twice")
    return tuple(entries)


def _exact_members(obj: Mapping[str, Any], wanted: frozenset[str], where: str) -> None:
    missing, extra = sorted(wanted - obj.keys()), sorted(obj.keys() - wanted)
    if missing or extra:
        parts = (["missing " + ", ".join(missing)] if missing else []) + (
            ["unexpected " + ", ".join(map(repr, extra))[:200]] if extra else []
        )
        raise MalformedAttachment(f"{where}: {'; '.join(parts)}")


def _entry(obj: Mapping[str, Any], where: str) -> Metadata:
    file_id, sha256, size = obj["id"], obj["sha256"], obj["size"]
    if not isinstance(file_id, str) or not ID_PATTERN.fullmatch(file_id):
        raise MalformedAttachment(f"{where}: id is not 32 lower-case hex digits")
    if not isinstance(sha256, str) or not SHA256_PATTERN.fullmatch(sha256):
        raise MalformedAttachment(f"{where}: sha256 is not 64 lower-case hex digits")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise MalformedAttachment(f"{where}: size is not a whole number of bytes")
    return Metadata(
        file_id,
        _text(obj["media_type"], 0, MAX_MEDIA_TYPE, f"{where}: media_type"),
        _text(obj["name"], 1, MAX_NAME, f"{where}: name"),
        sha256,
        size,
    )


def _text(value: object, shortest: int, longest: int, where: str) -> str:
    if not isinstance(value, str):
        raise MalformedAttachment(f"{where} is not a string")
    if not shortest <= len(value) <= longest:
        count = len(value)
        raise MalformedAttachment(f"{where} is {count} characters, not {shortest} to {longest}")
    if _bad_text(value):
        raise MalformedAttachment(f"{where} holds a lone surrogate (not Unicode text)")
    return value


def _bad_text(value: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def safe_extension(name: str) -> str:
    """``".ext"`` from the last dot of ``name`` when it is 1 to 10 ASCII letters or digits,
    else ``""``: the only part of a submitter's name the desk puts in a file name."""
    _, dot, ext = name.rpartition(".")
    return f".{ext.lower()}" if dot and re.fullmatch(r"[A-Za-z0-9]{1,10}", ext) else ""


def file_name(meta: Metadata) -> str:
    """The desk's own name for an attachment's file: ``attachment-<id>`` and a safe extension."""
    return f"attachment-{meta.id}{safe_extension(meta.name)}"
