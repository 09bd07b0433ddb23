"""The export bundle from the server's database and data directory (no web framework here).

The staff interface's download and the ``portal`` command line both call
:func:`export_to`. Exporting reads only: no row and no file is changed or
deleted, and exporting the same items on the same day gives the same bytes.

The manifest carries each thread's reply public key in clear (the desk compares
it with the one sealed in the report and seals replies to it): the stored,
masked value is unmasked here with the key from the server's secret
(``portal.replykey``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from portal import replykey
from portal.bundle import Entry, ExportError, Item, write_export
from portal.db import Database
from portal.models import Submission
from portal.storage import envelope_path


def entries(db: Database, mask_key: bytes) -> list[Entry]:
    """Every stored submission with its thread's reply key (in clear), oldest day first, then
    by id; ``mask_key`` is ``replykey.mask_key`` of the server's secret."""
    query = (
        select(Submission)
        .options(joinedload(Submission.thread))
        .order_by(Submission.received_on, Submission.id)
    )
    with db.session() as session:
        return [
            Entry(
                id=s.id,
                thread_id=s.thread_id,
                received_on=s.received_on,
                sealed_by=s.sealed_by.value,
                padded_size=s.padded_size,
                envelope_size=s.envelope_size,
                recipient_key_ids=s.key_ids,
                reply_public_key=replykey.unmask(
                    mask_key, s.thread.lookup_digest, s.thread.reply_public_key
                ),
            )
            for s in session.scalars(query)
        ]


def export_to(
    db: Database,
    data_dir: Path,
    out: BinaryIO,
    made_on: dt.date | None = None,
    *,
    mask_key: bytes,
) -> tuple[Item, ...]:
    """Write the export bundle of every stored submission to ``out``; return its items.

    ``made_on`` defaults to today (UTC); ``mask_key`` (``replykey.mask_key`` of
    the server's secret) unmasks the stored reply keys. Raises :class:`portal.bundle.ExportError`
    when an envelope file is missing or not the size its row records; ``out``
    then holds a partial bundle that the caller must discard.
    """
    day = made_on or dt.datetime.now(dt.UTC).date()

    def open_file(submission_id: str) -> BinaryIO:
        try:
            return envelope_path(data_dir, submission_id).open("rb")
        except OSError as err:
            raise ExportError(
                f"cannot read the envelope file of {submission_id}: {err.strerror}"
            ) from None

    return write_export(entries(db, mask_key), open_file, out, day)


def mark_exported(db: Database, items: tuple[Item, ...], day: dt.date) -> None:
    """Record ``day`` as the day ``items`` were last exported (nothing else is kept).

    Called only once the whole bundle was written; a submission purged in the
    meantime simply matches no row.
    """
    ids = [item.id for item in items]
    with db.session() as session:
        for start in range(0, len(ids), 500):  # bounded IN lists
            chunk = ids[start : start + 500]
            session.execute(
                update(Submission).where(Submission.id.in_(chunk)).values(exported_on=day)
            )
        session.commit()
