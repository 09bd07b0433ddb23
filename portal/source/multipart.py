"""The no-JavaScript form read as it streams in: answers in memory, each file sealed on the fly.

Werkzeug's form parser would spool a large file part, in plaintext, to a
temporary file; this reads the body in 64 KiB pieces with Werkzeug's
sans-IO ``MultipartDecoder`` instead. Text fields are collected in memory
(at most the report limit in all). The file input comes after every text
field, so when the first file part begins the answers are complete: the
``gate`` checks them (CSRF, answers, consent) before a byte of any file is
kept. Each file then goes through an encrypted spool into an attachment
envelope (``portal.spool``). On any failure every staged envelope is
removed; the caller stores them (``storage.store``) only on success.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.exceptions import BadRequest
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from portal import attachment, spool, uploads
from portal.storage import Staged

MULTIPART = "multipart/form-data"
PIECE = 1 << 16
FILE_FIELD = "attachments"
# What one file part may add to the body besides its bytes: the part's headers, with a
# name of up to 1000 code points percent- or RFC 2231-encoded.
PART_OVERHEAD = 16 << 10


class TooLarge(Exception):
    """A file, the files together, their number or the text is over its limit."""


class UnknownPart(Exception):
    """A part this form does not have (a file under another name)."""


@dataclass(frozen=True)
class Limits:
    text_bytes: int
    parts: int
    files: int
    file_bytes: int
    total_bytes: int


@dataclass
class Received:
    """What the form held: its answers, the gate's result, and each file sealed and staged."""

    values: dict[str, list[str]] = field(default_factory=dict)
    checked: Any = None
    files: list[tuple[Staged, attachment.Metadata]] = field(default_factory=list)
    gated: bool = False

    def discard(self) -> None:
        """Remove every staged envelope (ciphertext, but not to be kept)."""
        for staged, _ in self.files:
            with contextlib.suppress(FileNotFoundError):
                staged.source.unlink()
        self.files.clear()


class StreamingForm:
    """One multipart body, read from ``read`` and decoded part by part in bounded memory."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        boundary: bytes,
        limits: Limits,
        sealing: tuple[Path, Sequence[bytes]],
    ) -> None:
        self.read, self.limits = read, limits
        self.data_dir, self.recipients = sealing
        self.decoder = MultipartDecoder(boundary, limits.text_bytes, max_parts=limits.parts)
        self.received = Received()
        self.text = 0
        self.total = 0

    def run(self, gate: Callable[[dict[str, list[str]]], Any]) -> Received:
        """Read the whole body; ``gate(values)`` runs once the answers are in, before any file.

        Whatever ``gate`` raises stops the reading (the caller drains the
        rest). Raises :class:`TooLarge`, :class:`UnknownPart` or
        ``BadRequest`` (a malformed or cut-short body); nothing is then kept.
        """
        try:
            self._run(gate)
        except BaseException:
            self.received.discard()
            raise
        return self.received

    def _run(self, gate: Callable[[dict[str, list[str]]], Any]) -> None:
        part: Field | File | None = None
        pieces: list[bytes] = []
        sink: spool.Spool | None = None
        for event in self._events():
            if isinstance(event, Field):
                if self.received.gated:  # the answers were checked already: no more may come
                    raise BadRequest("a text field after a file")
                part, pieces = event, []
            elif isinstance(event, File):
                self._open_gate(gate)
                self._check_file(event)
                part, sink = event, spool.Spool(uploads.prepare(self.data_dir))
            elif isinstance(event, Data) and isinstance(part, Field):
                self._count_text(len(event.data))
                pieces.append(event.data)
                if not event.more_data:
                    value = b"".join(pieces).decode("utf-8", "replace")
                    self.received.values.setdefault(part.name, []).append(value)
            elif isinstance(event, Data) and isinstance(part, File) and sink is not None:
                self._count_file(sink, len(event.data))
                sink.write(event.data)
                if not event.more_data:
                    with sink:
                        self._seal(part, sink)
                    sink = None
        self._open_gate(gate)

    def _events(self) -> Any:
        ended = False
        while not ended:
            piece = self.read(PIECE)
            self.decoder.receive_data(piece or None)
            ended = not piece
            event = self.decoder.next_event()
            while not isinstance(event, NeedData):
                if isinstance(event, Epilogue):
                    return
                yield event
                event = self.decoder.next_event()
        raise BadRequest("the form ended before its last boundary")

    def _open_gate(self, gate: Callable[[dict[str, list[str]]], Any]) -> None:
        if not self.received.gated:
            self.received.checked = gate(self.received.values)
            self.received.gated = True

    def _check_file(self, event: File) -> None:
        if event.name != FILE_FIELD:
            raise UnknownPart(event.name)

    def _check_count(self) -> None:
        if len(self.received.files) >= self.limits.files:
            raise TooLarge("too many files")

    def _count_text(self, size: int) -> None:
        self.text += size
        if self.text > self.limits.text_bytes:
            raise TooLarge("the answers are too long")

    def _count_file(self, sink: spool.Spool, size: int) -> None:
        if size and not sink.size:
            self._check_count()
        self.total += size
        if sink.size + size > self.limits.file_bytes or self.total > self.limits.total_bytes:
            raise TooLarge("a file or the files together are too large")

    def _seal(self, part: File, sink: spool.Spool) -> None:
        if sink.size == 0 and not part.filename:
            return  # the file input left empty: browsers send an empty, nameless part
        if not sink.size:
            self._check_count()
        media_type = part.headers.get("Content-Type", "")
        staged = spool.seal_attachment(
            sink, self.data_dir, self.recipients, name=part.filename, media_type=media_type
        )
        self.received.files.append(staged)
