"""Periodic jobs: ``portal jobs run [--only NAME]``, by hand or from deploy/portal-jobs.timer.

Each job is one line in ``JOBS``: a name, what it does, and a function
``(config, database, today) -> summary``. A job only removes what no one can
still need: never an envelope that the desk has not acknowledged (those go
only through a return bundle, ``portal.purge``), never a file that belongs
to a row. Jobs log counts, never ids or times. One failing job does not stop
the others; the command exits non-zero if any failed.

- ``expire-replies``: replies that arrived ``PORTAL_REPLY_RETENTION_DAYS``
  days ago or more (default 30), read or not (``purge.expire_replies``, as
  ``portal replies expire``); it runs first, so that their threads can
  then empty.
- ``sweep-stray-files``: ciphertext files with no row (a crash between
  writing an envelope and committing its row, or a file whose shredding
  failed after its row was deleted) from before yesterday, and temporary
  files of interrupted writes older than a day. Their submitters were never
  told "stored". Overwritten with zeros, then unlinked.
- ``purge-empty-threads``: threads with no submission and no reply left,
  older than ``PORTAL_EMPTY_THREAD_DAYS`` days (default 180; 0 keeps them):
  their lookup digest and reply key are all that links a receipt to the
  server. After this the desk can no longer reply in that thread.
- ``reorder-rows``: rewrite the tables in the order of their random ids, so
  that where a row sits no longer tells when it arrived. PostgreSQL keeps a
  table in insertion order (``CLUSTER`` rewrites it by primary key, briefly
  locking it); SQLite's tables are kept in id order already (WITHOUT ROWID),
  and ``VACUUM`` rebuilds the file so no freed page keeps the old layout.
- ``blur-directory-times``: set the times of the envelope and reply folders
  to midnight (UTC) of today: adding a file sets them to the exact time of
  the latest arrival. (Their change times stay; see SECURITY.md.)
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, exists, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute

from portal import uploads
from portal.config import Config
from portal.db import Database
from portal.models import Reply, Submission, Thread
from portal.purge import CHUNK, expire_replies, shred
from portal.storage import ENVELOPE_DIR, REPLY_DIR, TEMP_PREFIX

log = logging.getLogger(__name__)
STORED_NAME = re.compile(r"[0-9a-f]{32}\.env")
DAY_SECONDS = 86400


@dataclass(frozen=True)
class Job:
    name: str
    about: str
    run: Callable[[Config, Database, dt.date], str]


def _stored_files(directory: Path) -> Iterator[tuple[str, Path]]:
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if STORED_NAME.fullmatch(path.name) and path.is_file():
                yield path.name[:32], path


def _known(db: Database, column: InstrumentedAttribute[str], ids: list[str]) -> set[str]:
    found: set[str] = set()
    with db.session() as session:
        for i in range(0, len(ids), CHUNK):
            found.update(session.scalars(select(column).where(column.in_(ids[i : i + CHUNK]))))
    return found


def _before(path: Path, cutoff: float) -> bool:
    return path.stat().st_mtime < cutoff


def expire_old_replies(config: Config, db: Database, today: dt.date) -> str:
    """Delete the replies kept past the retention, read or not."""
    deleted = expire_replies(db, config.data_dir, today, config.reply_retention_days)
    return f"deleted {len(deleted)} replies older than {config.reply_retention_days} days"


def sweep_stray_files(config: Config, db: Database, today: dt.date) -> str:
    """Remove row-less ciphertext from before yesterday and day-old temporary files."""
    # Stored files carry midnight of their day of arrival as their time.
    cutoff = calendar.timegm((today - dt.timedelta(days=1)).timetuple())
    removed = 0
    folders: tuple[tuple[str, InstrumentedAttribute[str]], ...] = (
        (ENVELOPE_DIR, Submission.id),
        (REPLY_DIR, Reply.id),
    )
    for folder, column in folders:
        directory = config.data_dir / folder
        files = dict(_stored_files(directory))
        known = _known(db, column, sorted(files))
        for file_id, path in files.items():
            if file_id not in known and _before(path, cutoff):
                shred(path)
                removed += 1
        if directory.is_dir():
            for temp in sorted(directory.glob(f"{TEMP_PREFIX}*")):
                if _before(temp, time.time() - DAY_SECONDS):
                    shred(temp)
                    removed += 1
    return f"removed {removed} stray file(s)"


def purge_empty_threads(config: Config, db: Database, today: dt.date) -> str:
    """Delete threads with nothing left in them, older than the configured number of days."""
    if not config.empty_thread_days:
        return "kept (PORTAL_EMPTY_THREAD_DAYS=0)"
    cutoff = today - dt.timedelta(days=config.empty_thread_days)
    query = delete(Thread).where(
        Thread.created_on < cutoff,
        ~exists().where(Submission.thread_id == Thread.id),
        ~exists().where(Reply.thread_id == Thread.id),
    )
    with db.session() as session:
        count = session.execute(query).rowcount  # type: ignore[attr-defined]
        session.commit()
    return f"deleted {count} empty thread(s) older than {config.empty_thread_days} days"


ORDERED_TABLES = ("threads", "submissions", "replies", "deleted_replies")


def reorder_rows(config: Config, db: Database, today: dt.date) -> str:
    """Rewrite the tables in primary-key (random) order instead of arrival order."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            for table in ORDERED_TABLES:
                conn.execute(text(f'CLUSTER "{table}" USING "pk_{table}"'))
            conn.commit()
            return f"rewrote {len(ORDERED_TABLES)} tables in id order"
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM"))
    return "rebuilt the database file (its tables are kept in id order)"


def expire_uploads(config: Config, db: Database, today: dt.date) -> str:
    """Delete uploads whose expiry has passed (PORTAL_UPLOAD_EXPIRY_HOURS) and their files."""
    removed = uploads.expire(db, config.data_dir, int(time.time()))
    return f"deleted {removed} abandoned upload(s)"


def blur_directory_times(config: Config, db: Database, today: dt.date) -> str:
    """Set the storage folders' times to midnight today, hiding the latest arrival's time."""
    midnight = calendar.timegm(today.timetuple())
    blurred = 0
    for folder in (ENVELOPE_DIR, REPLY_DIR):
        if (config.data_dir / folder).is_dir():
            os.utime(config.data_dir / folder, (midnight, midnight))
            blurred += 1
    return f"set the times of {blurred} folder(s) to midnight"


JOBS: tuple[Job, ...] = (
    Job("expire-replies", "delete replies kept past the retention", expire_old_replies),
    Job("sweep-stray-files", "remove ciphertext files no row refers to", sweep_stray_files),
    Job("purge-empty-threads", "delete old threads with nothing left", purge_empty_threads),
    Job("reorder-rows", "store rows in random-id order, not arrival order", reorder_rows),
    Job("blur-directory-times", "hide the latest arrival's time of day", blur_directory_times),
    Job("expire-uploads", "delete uploads never attached to a report", expire_uploads),
)


def names() -> list[str]:
    return [job.name for job in JOBS]


def run(config: Config, only: str | None, today: dt.date, out: Callable[[str], None]) -> bool:
    """Run every job (or only the one named); report each; ``True`` if all succeeded."""
    db = Database(config.database_url)
    ok = True
    try:
        for job in JOBS:
            if only is not None and job.name != only:
                continue
            try:
                out(f"{job.name}: {job.run(config, db, today)}")
            except (OSError, SQLAlchemyError) as err:
                ok = False
                out(f"{job.name}: FAILED ({type(err).__name__})")
                log.error("job %s failed: %s", job.name, type(err).__name__)
    finally:
        db.dispose()
    return ok
