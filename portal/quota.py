"""How much an upload may take: the size limits, the storage quota and the free disk space.

Checked before any byte of an upload is accepted, so that an upload that
would not fit is refused whole rather than half-stored. The quota counts
the stored envelopes and replies (their sizes are in the database, equal
to their files) and every upload in progress at its declared length; the
free space must stay above ``min_free`` after the bytes still promised to
the uploads in progress and the new ones are written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal import envelope
from portal.config import Config
from portal.models import Reply, Submission

# An attachment's metadata is at most 64 KiB, its framing ("UNRPFILE" and the size) 16 bytes.
MAX_METADATA = 65536
FRAMING = 16


class NoSpace(Exception):
    """The upload would not fit; ``reason`` is "quota" or "disk". Nothing was stored."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"no room for the upload ({reason})")
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    max_envelope: int  # the largest envelope of one attachment, in bytes
    quota_bytes: int  # 0: no quota
    min_free_bytes: int
    expiry_hours: int


def envelope_size(content: int, key_count: int) -> int:
    """The exact size of an envelope holding ``content`` bytes, sealed to ``key_count`` keys."""
    padded = envelope.padded_size(content)
    chunks = envelope.chunk_count(padded)
    return envelope.header_size(key_count) + padded + envelope.TAG_SIZE * chunks


def max_envelope(max_file: int, key_count: int) -> int:
    """The largest attachment envelope: a file of ``max_file`` bytes with the largest metadata."""
    return envelope_size(FRAMING + max_file + MAX_METADATA, key_count)


def allegation_bound(files: int, key_count: int, max_attachments: int) -> int:
    """The most that ``files`` attachment envelopes may total when their files total the limit.

    Padme pads a content of 64 KiB or more by at most 1/32 and the chunk
    tags add 1/4096, so an envelope is at most 1.04 times its file plus its
    header and two chunks (framing, metadata, length prefix and rounding).
    """
    per_file = envelope.header_size(key_count) + 2 * envelope.CHUNK_SIZE
    return files * per_file + max_attachments * 104 // 100


def limits(config: Config, key_count: int) -> Limits:
    """The upload limits of ``config`` for envelopes sealed to ``key_count`` keys."""
    return Limits(
        max_envelope=max_envelope(config.max_file_bytes, key_count),
        quota_bytes=config.quota_bytes,
        min_free_bytes=config.min_free_bytes,
        expiry_hours=config.upload_expiry_hours,
    )


def stored_bytes(session: Session) -> int:
    """Bytes of the stored envelopes and replies (each row's size equals its file's)."""
    envelopes = session.scalar(select(func.coalesce(func.sum(Submission.envelope_size), 0)))
    replies = session.scalar(select(func.coalesce(func.sum(Reply.size), 0)))
    return int(envelopes or 0) + int(replies or 0)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process may still write on the file system holding ``path``."""
    while not path.exists() and path != path.parent:
        path = path.parent
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize


def check(
    session: Session, data_dir: Path, needed: int, limits: Limits, promised: int, to_come: int
) -> None:
    """Raise :class:`NoSpace` unless ``needed`` more bytes fit the quota and the free space.

    ``promised`` is what the uploads in progress declared in all, ``to_come``
    what they have still to write.
    """
    if limits.quota_bytes and stored_bytes(session) + promised + needed > limits.quota_bytes:
        raise NoSpace("quota")
    if free_bytes(data_dir) - to_come - needed < limits.min_free_bytes:
        raise NoSpace("disk")
