"""Storing a follow-up: one more submission in the thread that its lookup token finds.

The same durability rule as ``portal.storage``: the envelope is written
through a temporary file, fsynced and renamed, and only then is its row
committed; if the commit fails the file is removed. The thread is found by
the keyed digest of the lookup token; an unknown digest stores nothing, and
neither does a thread that has had ``PORTAL_THREAD_SUBMISSIONS_PER_DAY``
submissions that day (``ratelimit.check_thread``, counted before the file is
written). Attachments (complete uploads, already checked by
``upload.claim_attachments``) are moved in with ``storage.place`` and their
rows committed with the follow-up's, their upload rows deleted in the same
transaction: all of it or none, each upload back in place on failure.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from portal import ratelimit, storage
from portal.db import Database
from portal.envelope import Header
from portal.models import SealedBy, Submission, Thread, encode_key_ids
from portal.source.upload import Refused

log = logging.getLogger(__name__)


class NoThread(storage.StorageError):
    """No thread has this lookup digest; nothing was stored."""


class ThreadBusy(storage.StorageError):
    """The thread has had as many submissions today as the portal accepts; nothing was stored."""


def thread_id(db: Database, lookup_digest: bytes) -> str:
    """The id of the thread with ``lookup_digest``; raises :class:`NoThread` or ``StorageError``."""
    try:
        with db.session() as session:
            found = session.scalar(select(Thread.id).where(Thread.lookup_digest == lookup_digest))
    except SQLAlchemyError as err:
        raise storage.StorageError(f"cannot read the database: {type(err).__name__}") from None
    if found is None:
        raise NoThread("no thread has this lookup digest")
    return found


def store(
    db: Database,
    data_dir: Path,
    lookup_digest: bytes,
    sealed: tuple[bytes, Header],
    sealed_by: SealedBy,
    day: dt.date,
    *,
    per_day: int = 0,
    attachments: Sequence[storage.Staged] = (),
) -> str:
    """Store a follow-up envelope in its thread; return the new submission's id.

    Raises :class:`NoThread` for an unknown digest, :class:`ThreadBusy` when
    the thread already has ``per_day`` submissions on ``day`` (0: no limit),
    ``UploadsGone`` when an attachment's upload was used or deleted
    meanwhile, ``StorageError`` when a file or a row cannot be written; in
    every case nothing is left behind and each attachment is back at its source.
    """
    data, header = sealed
    thread = thread_id(db, lookup_digest)
    check_day(db, thread, day, per_day)
    submission_id = storage.new_id()
    path = storage.envelope_path(data_dir, submission_id)
    try:
        storage.prepare(data_dir)
        storage.write_durably(path, data, day)
    except OSError as err:
        raise storage.StorageError(f"cannot write the envelope file: {err.strerror}") from None
    try:
        moved = storage.place(data_dir, [a.source for a in attachments], day)
    except FileNotFoundError:
        _discard(path)
        raise storage.UploadsGone("an upload to attach is gone") from None
    except OSError as err:
        _discard(path)
        raise storage.StorageError(f"cannot move an attachment: {err.strerror}") from None
    rows = [_row(submission_id, thread, sealed_by, header, len(data), day)]
    rows += [
        _row(m.name.removesuffix(storage.SUFFIX), thread, a.sealed_by, a.header,
             a.header.total_size, day)
        for a, (_, m) in zip(attachments, moved, strict=True)
    ]  # fmt: skip
    used = [a.upload_id for a in attachments if a.upload_id is not None]
    try:
        storage.commit_rows(db, rows, used)
    except storage.UploadsGone:
        _discard(path)
        storage.put_back(moved)
        raise
    except SQLAlchemyError as err:
        _discard(path)
        storage.put_back(moved)
        raise storage.StorageError(f"cannot commit the follow-up: {type(err).__name__}") from None
    return submission_id


def _row(
    submission_id: str, thread: str, sealed_by: SealedBy, header: Header, size: int, day: dt.date
) -> Submission:
    return Submission(
        id=submission_id,
        thread_id=thread,
        received_on=day,
        sealed_by=sealed_by,
        padded_size=header.padded_size,
        envelope_size=size,
        recipient_key_ids=encode_key_ids(header.key_ids),
    )


def check_day(db: Database, thread: str, day: dt.date, per_day: int) -> None:
    """Raise :class:`ThreadBusy` when the thread has ``per_day`` submissions on ``day``
    (0: no limit), ``StorageError`` when the database cannot be read."""
    try:
        with db.session() as session:
            ratelimit.check_thread(session, thread, day, per_day)
    except Refused:
        raise ThreadBusy("the thread has had its submissions for the day") from None
    except SQLAlchemyError as err:
        raise storage.StorageError(f"cannot read the database: {type(err).__name__}") from None


def _discard(path: Path) -> None:
    try:
        storage.remove_durably(path)
    except OSError as err:
        log.error("an uncommitted envelope file could not be removed: %s", err.strerror)
