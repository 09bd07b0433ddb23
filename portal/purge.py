"""Applying a return bundle: delete exactly the envelopes the desk acknowledged.

The whole bundle is checked before anything changes (``portal.returnbundle``
for its bytes; here, that every acknowledged id is a submission this server
holds). A bundle naming an id the server does not hold is refused whole and
changes nothing: either it was applied before (a replay: those items are
already purged), or it is partial or foreign. Then each acknowledged
envelope's SHA-256 is computed from the stored file: an item whose digest
differs from the acknowledgement (the desk received other bytes) is kept and
reported; the others are deleted, rows first (one transaction), then their
files, each overwritten with zeros, fsynced and unlinked, so that a crash
leaves at worst a file with no row, never a row without its file.

The bundle's replies are checked whole too, before anything changes: each must
name a thread this server holds, be neither stored already nor deleted before
(``DeletedReply`` keeps the ids of deleted replies, added in the transaction
that deletes them, so that a replayed bundle cannot store them again), be a
well-formed envelope (``envelope.inspect``), and be sealed to that thread's
reply key among its recipients (the stored key is masked under the server's
secret, ``portal.replykey``, and unmasked here to check). They are stored as
``replies/<id>.env`` (written durably, like envelopes) before the one
transaction that adds their rows and deletes the acknowledged submissions; if
it fails, the files are removed again. Once a bundle is applied, every reply
the submitter has read is deleted (:func:`forget_read_replies`): the desk has
answered since, and a reply kept on the server is one more thing to seize.
Replies are also deleted after a set time whether read or not
(:func:`expire_replies`, run by a periodic job: ``portal replies expire``).
Reply files are shredded like envelopes.

Thread rows stay: they hold only the lookup digest and the (masked) reply
public key, which replies to the submitter need.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from portal import envelope, replykey
from portal.db import Database
from portal.models import DeletedReply, Reply, Submission, Thread
from portal.returnbundle import ReturnBundle
from portal.storage import (
    envelope_path,
    fsync_directory,
    remove_durably,
    reply_path,
    write_durably,
)

log = logging.getLogger(__name__)
BLOCK = 1 << 20
CHUNK = 500  # ids per IN list


class ReturnRefused(Exception):
    """The bundle was refused whole; nothing changed. ``str(err)`` says why."""


@dataclass(frozen=True)
class Applied:
    deleted: tuple[str, ...]
    kept: tuple[str, ...]  # acknowledged, but the stored envelope has another digest
    replies: tuple[str, ...] = ()  # the ids of the replies stored for submitters


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


def file_digest(path: Path) -> bytes | None:
    """The SHA-256 of the file at ``path``, or ``None`` if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while block := fh.read(BLOCK):
                digest.update(block)
    except OSError:
        return None
    return digest.digest()


def check(db: Database, data_dir: Path, returned: ReturnBundle, *, mask_key: bytes) -> Applied:
    """Which acknowledged items would be deleted and which kept; raises ``ReturnRefused``.

    ``mask_key`` (``replykey.mask_key`` of the server's secret) unmasks the
    reply keys the returned replies must be sealed to.
    """
    acks = returned.acknowledgements
    if not acks and not returned.replies:
        raise ReturnRefused(
            "This return bundle acknowledges nothing, so nothing was deleted. The desk had"
            " opened nothing new since its last return bundle."
        )
    _check_replies(db, returned, mask_key)
    if not acks:
        return Applied((), (), tuple(r.id for r in returned.replies))
    wanted = [a.id for a in acks]
    with db.session() as session:
        known = _found(session, Submission.id, wanted)
    unknown = len(wanted) - len(known)
    if unknown == len(wanted):
        raise ReturnRefused(
            "Nothing was deleted: this server holds none of the items this return bundle"
            " acknowledges. It was most likely uploaded before (its items are already"
            " deleted), or it was written for another server."
        )
    if unknown:
        raise ReturnRefused(
            f"Nothing was deleted: {unknown} of the {len(wanted)} items this return bundle"
            " acknowledges are not on this server (already deleted, or never here). A bundle"
            " that was applied before, or partly, or written for another server is refused"
            " whole. Write a new return bundle on the desk."
        )
    deleted, kept = [], []
    for ack in acks:
        stored = file_digest(envelope_path(data_dir, ack.id))
        if stored is not None and hmac.compare_digest(stored, ack.sha256):
            deleted.append(ack.id)
        else:
            kept.append(ack.id)
    return Applied(tuple(deleted), tuple(kept), tuple(r.id for r in returned.replies))


def _check_replies(db: Database, returned: ReturnBundle, mask_key: bytes) -> None:
    """Refuse the whole bundle unless every reply can be stored for its thread's submitter."""
    if not returned.replies:
        return
    threads = sorted({r.thread_id for r in returned.replies})
    ids = [r.id for r in returned.replies]
    with db.session() as session:
        keys: dict[str, bytes] = {}
        for chunk in _chunks(threads):
            rows = session.execute(
                select(Thread.id, Thread.lookup_digest, Thread.reply_public_key).where(
                    Thread.id.in_(chunk)
                )
            )
            keys.update(
                (thread_id, replykey.unmask(mask_key, digest, stored))
                for thread_id, digest, stored in rows
            )
        stored = _found(session, Reply.id, ids)
        deleted = _found(session, DeletedReply.id, ids)
    if len(keys) < len(threads):
        raise ReturnRefused(
            "Nothing was changed: a reply in this return bundle is addressed to a thread this"
            " server does not hold. The bundle was written for another server, or is damaged."
        )
    if stored:
        raise ReturnRefused(
            f"Nothing was changed: {len(stored)} of the replies in this return bundle are"
            " already stored. It was most likely uploaded before."
        )
    if deleted:
        raise ReturnRefused(
            f"Nothing was changed: {len(deleted)} of the replies in this return bundle were"
            " stored before and have since been deleted (read, or kept past the retention)."
            " It was most likely uploaded before: do not upload it again."
        )
    _check_sealing(returned, keys)


def _found(session: Session, column: InstrumentedAttribute[str], ids: list[str]) -> set[str]:
    """Those of ``ids`` that ``column`` holds."""
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(session.scalars(select(column).where(column.in_(chunk))))
    return found


def _check_sealing(returned: ReturnBundle, keys: dict[str, bytes]) -> None:
    """Refuse unless every reply is an envelope sealed to its thread's reply key."""
    for reply in returned.replies:
        try:
            header = envelope.inspect(io.BytesIO(reply.envelope))
        except envelope.EnvelopeError as err:
            raise ReturnRefused(
                f"Nothing was changed: reply {reply.id} is not a usable envelope ({err})."
            ) from None
        if envelope.key_id(keys[reply.thread_id]) not in header.key_ids:
            raise ReturnRefused(
                f"Nothing was changed: reply {reply.id} is not sealed to its submitter's reply"
                " key, so they could never read it. Seal it again on the desk."
            )


def apply(db: Database, data_dir: Path, returned: ReturnBundle, *, mask_key: bytes) -> Applied:
    """Check ``returned`` whole, store its replies, then delete the acknowledged items whose
    digests match. ``mask_key`` is as for :func:`check`."""
    plan = check(db, data_dir, returned, mask_key=mask_key)
    ids = list(plan.deleted)
    day = dt.datetime.now(dt.UTC).date()
    written = _write_replies(data_dir, returned, day)
    try:
        with db.session() as session:
            for chunk in _chunks(ids):
                session.execute(delete(Submission).where(Submission.id.in_(chunk)))
            session.add_all(
                Reply(
                    id=r.id,
                    thread_id=r.thread_id,
                    received_on=day,
                    size=len(r.envelope),
                    signature=r.signature,
                )
                for r in returned.replies
            )
            session.commit()
    except BaseException:
        for path in written:
            _forget(path)
        raise
    for submission_id in ids:
        shred(envelope_path(data_dir, submission_id))
    if ids:
        fsync_directory(envelope_path(data_dir, ids[0]).parent)
    forget_read_replies(db, data_dir)
    return plan


def forget_read_replies(db: Database, data_dir: Path) -> tuple[str, ...]:
    """Delete every reply the submitter has read (rows, then shredded files); return their ids.

    Called once a return bundle is applied: the submitter has read them and the
    desk has acknowledged a bundle since. Replies just stored are unread.
    """
    return _delete_replies(db, data_dir, Reply.read_on.is_not(None))


def expire_replies(db: Database, data_dir: Path, today: dt.date, days: int) -> tuple[str, ...]:
    """Delete every reply that arrived ``days`` or more days before ``today``, read or not."""
    if days < 1:
        raise ValueError("the reply retention must be at least one day")
    return _delete_replies(db, data_dir, Reply.received_on <= today - dt.timedelta(days=days))


def _delete_replies(db: Database, data_dir: Path, condition: Any) -> tuple[str, ...]:
    """Delete the replies matching ``condition``; remember their ids in the same transaction,
    so that a return bundle carrying one of them again is refused as a replay."""
    with db.session() as session:
        ids = list(session.scalars(select(Reply.id).where(condition).order_by(Reply.id)))
        for chunk in _chunks(ids):
            session.execute(delete(Reply).where(Reply.id.in_(chunk)))
        session.add_all(DeletedReply(id=reply_id) for reply_id in ids)
        session.commit()
    for reply_id in ids:  # rows first: a crash leaves a file with no row, never the reverse
        shred(reply_path(data_dir, reply_id))
    if ids:
        fsync_directory(reply_path(data_dir, ids[0]).parent)
    return tuple(ids)


def _write_replies(data_dir: Path, returned: ReturnBundle, day: dt.date) -> list[Path]:
    """Write every reply's envelope durably; on a failure remove those written and refuse."""
    written: list[Path] = []
    try:
        for reply in returned.replies:
            path = reply_path(data_dir, reply.id)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_durably(path, reply.envelope, day)
            written.append(path)
    except OSError as err:
        for path in written:
            _forget(path)
        raise ReturnRefused(
            f"Nothing was changed: a reply could not be written ({err.strerror}). Ask the"
            " operator to check the server's data directory."
        ) from None
    return written


def _forget(path: Path) -> None:
    try:
        remove_durably(path)
    except OSError as err:
        log.error("an uncommitted reply file could not be removed: %s", err.strerror)


def shred(path: Path) -> None:
    """Overwrite ``path`` with zeros, fsync it, then unlink it.

    On a copy-on-write, journalled-data or flash file system the old blocks
    may survive the overwrite; the overwrite still removes
    them from the file itself. A failure is logged (the row is already gone,
    so the file is a stray ciphertext the operator can remove) and does not
    stop the other deletions.
    """
    try:
        with path.open("r+b") as fh:
            size = os.fstat(fh.fileno()).st_size
            zeros = bytes(min(BLOCK, size))
            left = size
            while left:
                left -= fh.write(zeros[: min(BLOCK, left)])
            fh.flush()
            os.fsync(fh.fileno())
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        log.error("an acknowledged envelope file could not be removed: %s", err.strerror)
