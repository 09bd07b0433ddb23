"""What a decrypted envelope holds: a report document or an attachment (FORMAT.md §15.6).

The desk tells them apart by the first bytes of the content: an attachment
starts with ``UNRPFILE``, a report with ``{``. :class:`Content` is the sink
``envelope.open_stream`` writes into: it decides on the first eight bytes,
then passes a report through unchanged and an attachment through
:class:`portal.attachment.Decoder` (only the file's bytes go on, hashed, and
the metadata is checked at the end). Envelopes the desk sealed itself
(path ``desk``) are never read as attachments: ``portal-desk seal`` takes any
file. No database or web module here: ``decrypt`` uses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import BinaryIO, cast

from portal import attachment, envelope
from portal.attachment import Decoder, Metadata

Target = Callable[[], BinaryIO | None]  # None: check, but keep nothing


class TooLarge(Exception):
    """A report longer than the limit the caller set."""


class Content:
    """A writable sink that routes a decrypted content by its kind.

    ``on_report()`` and ``on_attachment()`` are called once, when the kind is
    known, and return where the report's bytes or the attachment's file
    bytes go (they may raise to refuse that kind). A report longer than
    ``report_limit`` bytes (when given) raises :class:`TooLarge`.
    """

    def __init__(
        self,
        on_report: Target,
        on_attachment: Target,
        *,
        attachments: bool = True,
        report_limit: int | None = None,
    ) -> None:
        self._on_report, self._on_attachment = on_report, on_attachment
        self._attachments = attachments
        self._limit = report_limit
        self._head = bytearray()
        self._kind: str | None = None
        self._report: BinaryIO | None = None
        self._decoder: Decoder | None = None
        self._seen = 0

    @classmethod
    def for_header(
        cls, header: envelope.Header, on_report: Target, on_attachment: Target, **kwargs: int
    ) -> Content:
        """A sink for an envelope with this header (desk-sealed ones are always raw)."""
        allowed = header.path is not envelope.SealPath.DESK
        return cls(on_report, on_attachment, attachments=allowed, **kwargs)

    @property
    def stream(self) -> BinaryIO:
        """This sink typed as the binary stream ``envelope.open_stream`` expects."""
        return cast(BinaryIO, self)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        size = len(data)
        if self._kind is None:
            self._head += data  # once: the first batch, until the kind is known
            if len(self._head) < len(attachment.MAGIC):
                return size
            self._decide()
            data, self._head = bytes(self._head), bytearray()
        self._pass(data)
        return size

    def _decide(self) -> None:
        if self._attachments and bytes(self._head[: len(attachment.MAGIC)]) == attachment.MAGIC:
            self._kind = "attachment"
            self._decoder = Decoder(self._on_attachment())
        else:
            self._kind = "report"
            self._report = self._on_report()

    def _pass(self, data: bytes | bytearray | memoryview) -> None:
        if self._decoder is not None:
            self._decoder.write(data)
            return
        self._seen += len(data)
        if self._limit is not None and self._seen > self._limit:
            raise TooLarge(f"the content is longer than {self._limit} bytes")
        if self._report is not None:
            self._report.write(data)

    def finish(self) -> Metadata | None:
        """The checked metadata of an attachment, or ``None`` for a report.

        Raises :class:`portal.attachment.AttachmentError` if the attachment
        is not intact: whatever was written must then be discarded.
        """
        if self._kind is None:
            self._kind = "report"  # shorter than the magic: not an attachment
            self._report = self._on_report()
            self._pass(bytes(self._head))
        if self._decoder is not None:
            return self._decoder.finish()
        return None


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def plain(text: str) -> str:
    """Text safe for a terminal: control characters (escape sequences, bidi overrides) shown
    as a backslash-u escape with four hex digits instead of acting on the screen; line feeds
    and tabs kept."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def one_line(text: str) -> str:
    """Like :func:`plain`, with line feeds, tabs and line separators escaped too (for names)."""
    return _ANY_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
