"""Resumable uploads of browser-sealed attachments: parts on disk, offsets in the database.

An upload is a file ``<data_dir>/uploads/<id>.part`` (mode 0600, directory
0700) and a row holding the SHA-256 of its token, its declared length, the
committed offset and its expiry (``docs/UPLOADS.md``). A chunk is written
at the committed offset, fsynced, and only then is the new offset
committed: every byte below the committed offset is on disk. After a crash
the file may be longer than the committed offset; the next chunk truncates
it first. Only one request at a time writes an upload (an exclusive,
non-blocking ``flock`` on its file, so this holds across worker processes).
The server cannot open the envelope; it checks its header as soon as the
header is in and its framing (``envelope.inspect``) once it is complete.
No web framework here: ``portal.source.uploads`` maps the errors to answers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from portal import envelope, quota
from portal.db import Database
from portal.envelope import CHUNK_SIZE, TAG_SIZE, SealPath
from portal.models import Upload
from portal.storage import fsync_directory, new_id, remove_durably

UPLOAD_DIR = "uploads"
SUFFIX = ".part"
MAX_CHUNK = 16 * (CHUNK_SIZE + TAG_SIZE)  # 16 envelope chunks: 1,048,832 bytes
PIECE = 1 << 16  # bytes read from the request and written at a time
HOUR = 3600
TOKEN = re.compile(r"[0-9a-f]{64}")
# Files the no-JavaScript path seals into (see ``portal.source.multipart``); one left by a
# crash is removed once it has not been written to for a day.
STAGING_PREFIX = ".sealing-"
STAGING_MAX_AGE = 24 * HOUR

# Reserving space and inserting the row happen together, so that two requests of this
# process cannot both take the last of the quota (other processes: SECURITY.md).
_reserve = threading.Lock()

Read = Callable[[int], bytes]


class UploadError(Exception):
    """Base class; the upload is as it was unless the subclass says otherwise."""


class UnknownUpload(UploadError):
    """No upload has this token, or it expired."""


class OffsetMismatch(UploadError):
    """The chunk does not start at the committed offset (or another request is writing)."""

    def __init__(self, committed: int) -> None:
        super().__init__(f"the committed offset is {committed}")
        self.committed = committed


class TooLarge(UploadError):
    """The upload or the chunk is larger than allowed."""


class BadChunk(UploadError):
    """The chunk is empty or arrived incomplete (``incomplete``); nothing of it was kept."""

    def __init__(self, message: str, *, incomplete: bool = False) -> None:
        super().__init__(message)
        self.incomplete = incomplete


class Rejected(UploadError):
    """The envelope's header or framing is wrong: the upload was deleted. ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "damaged", "path", "keys" or "length"


@dataclass(frozen=True)
class Status:
    offset: int
    length: int
    complete: bool


@dataclass(frozen=True)
class Claimed:
    """A complete upload about to be attached: its row id, file and envelope header."""

    id: str
    path: Path
    header: envelope.Header


def upload_dir(data_dir: Path) -> Path:
    return data_dir / UPLOAD_DIR


def part_path(data_dir: Path, upload_id: str) -> Path:
    """Where the bytes of upload ``upload_id`` are kept until it is attached or expires."""
    return upload_dir(data_dir) / f"{upload_id}{SUFFIX}"


def prepare(data_dir: Path) -> Path:
    """Create the data directory and its uploads directory (mode 0700); return the latter."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = upload_dir(data_dir)
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def token_digest(token: str) -> bytes | None:
    """The stored digest of ``token`` (64 lower-case hex digits), ``None`` when malformed."""
    if not TOKEN.fullmatch(token):
        return None
    return hashlib.sha256(bytes.fromhex(token)).digest()


def expiry(now: int, hours: int) -> int:
    """When an upload made at ``now`` expires, rounded up to the hour (hides the time of day)."""
    return -(-(now + hours * HOUR) // HOUR) * HOUR


def _find(session: Session, token: str, now: int) -> Upload:
    digest = token_digest(token)
    row = None if digest is None else session.scalars(
        select(Upload).where(Upload.token_digest == digest)
    ).first()  # fmt: skip
    if row is None or row.expires_at <= now:
        raise UnknownUpload("no upload has this token")
    return row


def reserved(session: Session) -> tuple[int, int]:
    """Bytes the uploads in progress were promised: declared in all, and still to come."""
    declared, written = session.execute(
        select(func.coalesce(func.sum(Upload.length), 0),
               func.coalesce(func.sum(Upload.committed_offset), 0))
    ).one()  # fmt: skip
    return int(declared), int(declared) - int(written)


def create(db: Database, data_dir: Path, length: int, limits: quota.Limits, now: int) -> str:
    """A new empty upload of ``length`` bytes; returns its token (64 hex digits).

    Expired uploads are removed first. Raises :class:`TooLarge` when
    ``length`` is above ``limits.max_envelope`` and :class:`quota.NoSpace`
    when the quota or the free space would not hold it; nothing is created
    then. The database keeps only the token's SHA-256.
    """
    if not 0 < length <= limits.max_envelope:
        raise TooLarge(f"an upload is 1 to {limits.max_envelope} bytes")
    expire(db, data_dir, now)
    directory = prepare(data_dir)
    token = secrets.token_bytes(32)
    row = Upload(id=new_id(), token_digest=hashlib.sha256(token).digest(), length=length,
                 committed_offset=0, complete=False,
                 expires_at=expiry(now, limits.expiry_hours))  # fmt: skip
    with _reserve, db.session() as session:
        promised, to_come = reserved(session)
        quota.check(session, data_dir, length, limits, promised, to_come)
        session.add(row)
        session.commit()
    try:
        fd = os.open(part_path(data_dir, row.id), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        fsync_directory(directory)
    except OSError:
        _delete_rows(db, [row.id])
        raise
    return token.hex()


def status(db: Database, token: str, now: int) -> Status:
    """The committed offset, declared length and completeness of an upload."""
    with db.session() as session:
        row = _find(session, token, now)
        return Status(row.committed_offset, row.length, row.complete)


def append(
    db: Database,
    data_dir: Path,
    token: str,
    at: int,
    body: tuple[Read, int],
    key_ids: Sequence[bytes],
    now: int,
) -> Status:
    """Write the chunk ``body`` (a read function and its length) at offset ``at``, durably.

    Acknowledged (the returned status) only once the bytes are fsynced and
    the new offset committed. The header is checked as soon as it is in,
    the whole envelope once the upload is complete; either failing deletes
    the upload (:class:`Rejected`). Any other error leaves it unchanged.
    """
    read, size = body
    with db.session() as session:
        row = _find(session, token, now)
        upload_id, length = row.id, row.length
        _check_chunk(row, at, size)
    path = part_path(data_dir, upload_id)
    try:
        fh = path.open("r+b", buffering=0)
    except FileNotFoundError:
        _delete_rows(db, [upload_id])  # a row whose file was lost: it cannot be resumed
        raise UnknownUpload("the upload's file is gone") from None
    with fh:
        _lock(fh, at)
        with db.session() as session:  # again, now that no other request can write
            _check_chunk(_find(session, token, now), at, size)
        if os.fstat(fh.fileno()).st_size < at:  # acknowledged bytes are gone: it cannot go on
            _remove(db, data_dir, upload_id)
            raise Rejected("damaged")
        fh.truncate(at)  # bytes past the committed offset were never acknowledged
        fh.seek(at)
        _write_chunk(fh, at, read, size)
        done = at + size
        _check_envelope(db, data_dir, upload_id, fh, (at, done, length), key_ids)
        _commit_offset(db, upload_id, at, done, done == length, fh)
    return Status(done, length, done == length)


def _check_chunk(row: Upload, at: int, size: int) -> None:
    if row.complete or at != row.committed_offset:
        raise OffsetMismatch(row.committed_offset)
    if size > MAX_CHUNK or at + size > row.length:
        raise TooLarge("the chunk runs past the end of the upload or is too long")
    if size <= 0:
        raise BadChunk("the chunk is empty")


def _lock(fh: BinaryIO, at: int) -> None:
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OffsetMismatch(at) from None


def _write_chunk(fh: BinaryIO, at: int, read: Read, size: int) -> None:
    """Copy ``size`` bytes from ``read`` to ``fh`` and fsync; on any failure, cut back to ``at``."""
    try:
        left = size
        while left:
            piece = read(min(PIECE, left))
            if not piece:
                raise BadChunk("the chunk arrived incomplete", incomplete=True)
            fh.write(piece)
            left -= len(piece)
        os.fsync(fh.fileno())
    except BaseException:
        fh.truncate(at)
        raise


def _check_envelope(
    db: Database,
    data_dir: Path,
    upload_id: str,
    fh: BinaryIO,
    span: tuple[int, int, int],
    key_ids: Sequence[bytes],
) -> None:
    at, done, length = span
    size = envelope.header_size(len(key_ids))
    try:
        if at < size <= done or (done == length and done < size):
            fh.seek(0)
            check_header(fh.read(size), key_ids, length)
        if done == length:
            fh.seek(0)
            envelope.inspect(fh)
    except envelope.EnvelopeError:
        _remove(db, data_dir, upload_id)
        raise Rejected("damaged") from None
    except Rejected:
        _remove(db, data_dir, upload_id)
        raise


def check_header(raw: bytes, key_ids: Sequence[bytes], length: int) -> envelope.Header:
    """An uploaded attachment's header: from a browser, to exactly ``key_ids``, ``length`` long.

    Raises :class:`Rejected` (or ``EnvelopeError`` when it is not a header at all).
    """
    header = envelope.parse_header(raw)
    if header.path is not SealPath.BROWSER:
        raise Rejected("path")
    if sorted(header.key_ids) != sorted(key_ids):
        raise Rejected("keys")
    if header.total_size != length:
        raise Rejected("length")
    return header


def _commit_offset(
    db: Database, upload_id: str, at: int, done: int, complete: bool, fh: BinaryIO
) -> None:
    with db.session() as session:
        result = session.execute(
            update(Upload)
            .where(Upload.id == upload_id, Upload.committed_offset == at, ~Upload.complete)
            .values(committed_offset=done, complete=complete)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            fh.truncate(at)
            raise UnknownUpload("the upload was deleted while the chunk was written")
        expires_at = session.scalar(select(Upload.expires_at).where(Upload.id == upload_id))
        session.commit()
    # The file's times say no more than the row does: the hour it expires.
    with contextlib.suppress(OSError):
        os.utime(fh.fileno(), (expires_at or 0, expires_at or 0))


def remove(db: Database, data_dir: Path, token: str, now: int) -> None:
    """Delete an upload and its file (the row first, so it can never be attached after)."""
    with db.session() as session:
        upload_id = _find(session, token, now).id
    _remove(db, data_dir, upload_id)


def _remove(db: Database, data_dir: Path, upload_id: str) -> None:
    _delete_rows(db, [upload_id])
    remove_durably(part_path(data_dir, upload_id))


def _delete_rows(db: Database, ids: Iterable[str]) -> None:
    with db.session() as session:
        session.execute(delete(Upload).where(Upload.id.in_(list(ids))))
        session.commit()


def expire(db: Database, data_dir: Path, now: int) -> int:
    """Delete every upload whose expiry has passed, and leftover files; return how many.

    Rows go first, so that an upload is never attached once its file may be
    gone; a crash before the files are removed leaves files without rows,
    which the next run removes (parts with no row, and sealing files of the
    no-JavaScript path older than the expiry period).
    """
    directory = upload_dir(data_dir)
    with db.session() as session:
        ids = set(session.scalars(select(Upload.id)))
        expired = set(session.scalars(select(Upload.id).where(Upload.expires_at <= now)))
    if expired:
        _delete_rows(db, expired)
    if not directory.is_dir():
        return len(expired)
    removed = 0
    for path in directory.iterdir():
        if _is_leftover(path, ids - expired, now):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed += 1
    if removed:
        fsync_directory(directory)
    return len(expired)


def _is_leftover(path: Path, live: set[str], now: int) -> bool:
    if path.suffix == SUFFIX:
        return path.stem not in live
    if path.name.startswith(STAGING_PREFIX):
        with contextlib.suppress(FileNotFoundError):
            return path.stat().st_mtime < now - STAGING_MAX_AGE
    return False


def claim(db: Database, data_dir: Path, tokens: Sequence[str], now: int) -> list[Claimed]:
    """The complete, unexpired uploads of ``tokens``, in order, with their headers read.

    Raises :class:`UnknownUpload` for a token with no upload (never made,
    expired or already attached) and :class:`OffsetMismatch` for one not
    yet complete. Changes nothing: ``storage.store`` deletes the rows in the
    transaction that stores the report.
    """
    found = []
    with db.session() as session:
        for token in tokens:
            row = _find(session, token, now)
            if not row.complete:
                raise OffsetMismatch(row.committed_offset)
            found.append((row.id, row.length))
    claimed = []
    for upload_id, length in found:
        path = part_path(data_dir, upload_id)
        try:
            with path.open("rb") as fh:
                header, _ = envelope.read_header(fh)
        except (OSError, envelope.EnvelopeError):
            raise UnknownUpload("the upload's file is gone or damaged") from None
        if header.total_size != length:
            raise UnknownUpload("the upload's file does not match its row")
        claimed.append(Claimed(upload_id, path, header))
    return claimed
