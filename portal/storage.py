"""Ciphertext files and their rows, stored so that a submission is complete or absent.

An envelope is written to a temporary file in the envelope directory,
flushed and fsynced, renamed to its final name and the directory fsynced;
only then are its rows committed. If the commit fails the file is removed.
A crash between the two leaves at worst a stray ciphertext file with no
row, never a row without its file, and never a submitter told "stored" for
something that is not on disk. File times are set to midnight (UTC) of the
day of arrival, so that the file system does not keep the time of day the
database refuses to keep (the inode change time remains; see SECURITY.md).

A report may come with attachments: envelopes already on disk (complete
uploads, or files the no-JavaScript path sealed). They are moved (linked,
then unlinked) into the envelope directory after the report's file is
written and before the one transaction that commits every row and deletes
the upload rows; if that transaction fails they are moved back, so that
the uploads can be attached by a second try.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import logging
import os
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from portal.db import Database
from portal.envelope import Header
from portal.models import Base, SealedBy, Submission, Thread, Upload, encode_key_ids

log = logging.getLogger(__name__)

ENVELOPE_DIR = "envelopes"
REPLY_DIR = "replies"
SUFFIX = ".env"
TEMP_PREFIX = ".incoming-"


class StorageError(Exception):
    """Nothing was stored; the message is for the operator's log (it names no submission)."""


class LookupTokenTaken(StorageError):
    """A thread with this lookup digest exists already; nothing was stored."""


class UploadsGone(StorageError):
    """An upload to attach was deleted or attached by another request; nothing was stored."""


@dataclass(frozen=True)
class Incoming:
    """A validated envelope and the metadata the brief allows the server to keep.

    ``masked_reply_key`` is the reply public key as stored, masked under the
    server's secret for this ``lookup_digest`` (``portal.replykey.mask``), never
    the clear key: storing does no cryptography.
    """

    envelope: bytes
    header: Header
    lookup_digest: bytes
    masked_reply_key: bytes
    sealed_by: SealedBy


@dataclass(frozen=True)
class Staged:
    """An attachment envelope on disk at ``source``, checked, waiting to be stored.

    ``upload_id`` names the upload row to delete in the same transaction
    (``None`` for a file the server sealed itself).
    """

    source: Path
    header: Header
    sealed_by: SealedBy
    upload_id: str | None = None


def new_id() -> str:
    """A random row id (128 bits), also used as the envelope's file name."""
    return secrets.token_hex(16)


def prepare(data_dir: Path) -> Path:
    """Create the data directory and its envelope directory (mode 0700); return the latter."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(mode=0o700, exist_ok=True)
    directory = data_dir / ENVELOPE_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


def envelope_path(data_dir: Path, submission_id: str) -> Path:
    """Where the envelope of ``submission_id`` is stored."""
    return data_dir / ENVELOPE_DIR / f"{submission_id}{SUFFIX}"


def reply_path(data_dir: Path, reply_id: str) -> Path:
    """Where the sealed reply ``reply_id`` (from a return bundle) is stored."""
    return data_dir / REPLY_DIR / f"{reply_id}{SUFFIX}"


def fsync_directory(directory: Path) -> None:
    """Make a rename or an unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, day: dt.date) -> None:
    """Write ``data`` to ``path`` so that it is on disk complete, or not there at all.

    The temporary file lives in the same directory (so the rename is atomic);
    it holds ciphertext only. Refuses to replace an existing file.
    """
    midnight = calendar.timegm(day.timetuple())
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.utime(temp, (midnight, midnight))
        os.link(temp, path)
    finally:
        os.unlink(temp)
    fsync_directory(path.parent)


def remove_durably(path: Path) -> None:
    """Remove ``path`` (if present) and make the removal durable."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fsync_directory(path.parent)


def lookup_taken(db: Database, lookup_digest: bytes) -> bool:
    """Whether a thread already has this lookup digest."""
    with db.session() as session:
        query = select(exists().where(Thread.lookup_digest == lookup_digest))
        return bool(session.scalar(query))


def _rows(incoming: Incoming, submission_id: str, day: dt.date) -> tuple[Thread, Submission]:
    thread = Thread(
        id=new_id(),
        lookup_digest=incoming.lookup_digest,
        reply_public_key=incoming.masked_reply_key,
        created_on=day,
    )
    submission = Submission(
        id=submission_id,
        thread=thread,
        received_on=day,
        sealed_by=incoming.sealed_by,
        padded_size=incoming.header.padded_size,
        envelope_size=len(incoming.envelope),
        recipient_key_ids=encode_key_ids(incoming.header.key_ids),
    )
    return thread, submission


def _attachment_row(thread: Thread, item: Staged, path: Path, day: dt.date) -> Submission:
    return Submission(
        id=path.name.removesuffix(SUFFIX),
        thread=thread,
        received_on=day,
        sealed_by=item.sealed_by,
        padded_size=item.header.padded_size,
        envelope_size=item.header.total_size,
        recipient_key_ids=encode_key_ids(item.header.key_ids),
    )


def commit_rows(db: Database, rows: Sequence[Base], upload_ids: Sequence[str] = ()) -> None:
    """Add ``rows`` and delete the complete uploads ``upload_ids`` in one transaction.

    Raises :class:`UploadsGone` (nothing committed) when one of them is no
    longer a complete upload; a database error propagates.
    """
    with db.session() as session:
        session.add_all(rows)
        if upload_ids:
            query = delete(Upload).where(Upload.id.in_(upload_ids), Upload.complete)
            if session.execute(query).rowcount != len(upload_ids):  # type: ignore[attr-defined]
                session.rollback()
                raise UploadsGone("an upload to attach is gone")
        session.commit()


def store(
    db: Database,
    data_dir: Path,
    incoming: Incoming,
    day: dt.date,
    attachments: Sequence[Staged] = (),
) -> str:
    """Store a new thread, its first submission and its attachments; return the report's id.

    Raises :class:`LookupTokenTaken` when the lookup digest is in use,
    :class:`UploadsGone` when an upload was attached or deleted meanwhile,
    and :class:`StorageError` when a file or the rows cannot be written; in
    every case nothing is stored and each attachment is back at its source.
    """
    _check_lookup_digest(db, incoming.lookup_digest)
    submission_id = new_id()
    path = envelope_path(data_dir, submission_id)
    try:
        prepare(data_dir)
        write_durably(path, incoming.envelope, day)
    except OSError as err:
        raise StorageError(f"cannot write the envelope file: {err.strerror}") from None
    try:
        moved = place(data_dir, [a.source for a in attachments], day)
    except FileNotFoundError:
        _discard(path)
        raise UploadsGone("an upload to attach is gone") from None
    except OSError as err:
        _discard(path)
        raise StorageError(f"cannot move an attachment: {err.strerror}") from None
    thread, submission = _rows(incoming, submission_id, day)
    extra = [
        _attachment_row(thread, a, m, day) for a, (_, m) in zip(attachments, moved, strict=True)
    ]
    used = [a.upload_id for a in attachments if a.upload_id is not None]
    try:
        commit_rows(db, [thread, submission, *extra], used)
    except BaseException as err:
        _discard(path)
        put_back(moved)
        raise _commit_error(db, incoming, err) from None
    return submission_id


def place(data_dir: Path, sources: Sequence[Path], day: dt.date) -> list[tuple[Path, Path]]:
    """Move each file of ``sources`` to a new envelope name, durably; all of them or none.

    Returns the (source, destination) pairs. A link, not a rename, so that
    nothing is ever replaced; the file times become midnight of ``day``.
    """
    midnight = calendar.timegm(day.timetuple())
    moved: list[tuple[Path, Path]] = []
    try:
        for source in sources:
            target = envelope_path(data_dir, new_id())
            os.link(source, target)
            moved.append((source, target))
            os.unlink(source)
            os.utime(target, (midnight, midnight))
        for directory in {data_dir / ENVELOPE_DIR, *(s.parent for s in sources)}:
            fsync_directory(directory)
    except OSError:
        put_back(moved)
        raise
    return moved


def put_back(moved: Sequence[tuple[Path, Path]]) -> None:
    """Undo :func:`place`: each file back at its source (a failure is logged, not raised)."""
    for source, target in moved:
        try:
            if not source.exists():
                os.link(target, source)
            remove_durably(target)
        except OSError as err:
            log.error("an attachment could not be moved back: %s", err.strerror)


def _discard(path: Path) -> None:
    """Remove a file whose rows were not committed; a failure here must not hide the first."""
    try:
        remove_durably(path)
    except OSError as err:
        # A ciphertext file with no row: harmless to submitters, found by the operator.
        log.error("an uncommitted envelope file could not be removed: %s", err.strerror)


def _check_lookup_digest(db: Database, lookup_digest: bytes) -> None:
    try:
        taken = lookup_taken(db, lookup_digest)
    except SQLAlchemyError as err:
        raise StorageError(f"cannot read the database: {type(err).__name__}") from None
    if taken:
        raise LookupTokenTaken("the lookup token is in use")


def _commit_error(db: Database, incoming: Incoming, err: BaseException) -> BaseException:
    if isinstance(err, UploadsGone):
        return err
    if isinstance(err, IntegrityError):
        try:
            if lookup_taken(db, incoming.lookup_digest):
                return LookupTokenTaken("the lookup token is in use")
        except SQLAlchemyError:
            pass
    if isinstance(err, SQLAlchemyError):
        return StorageError(f"cannot commit the submission: {type(err).__name__}")
    return err
