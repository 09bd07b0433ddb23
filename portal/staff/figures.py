"""The figures the dashboard shows: counts, a day and a size, never a submission's details."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from portal.db import Database
from portal.models import Reply, Submission
from portal.storage import ENVELOPE_DIR

UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB")


@dataclass(frozen=True)
class Figures:
    waiting: int  # stored and not yet acknowledged by the desk
    new: int  # of those, never exported
    exported: int  # of those, exported and waiting for the desk's acknowledgement
    oldest: dt.date | None  # the day the oldest of those arrived
    storage_bytes: int  # the envelope directory's files
    unread_replies: int = 0  # replies from the desk the submitter has not read yet

    @property
    def storage(self) -> str:
        return human_size(self.storage_bytes)


def human_size(size: int) -> str:
    """``size`` in bytes as a person reads it: "512 bytes", "1.5 MiB"."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{size} bytes" if unit == 0 else f"{value:.1f} {UNITS[unit]}"


def directory_size(directory: Path) -> int:
    """The total size of the files directly in ``directory`` (0 when it does not exist)."""
    try:
        with os.scandir(directory) as entries:
            return sum(e.stat().st_size for e in entries if e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return 0


def gather(db: Database, data_dir: Path) -> Figures:
    """The dashboard's figures, from the database and the envelope directory."""
    with db.session() as session:
        waiting, exported, oldest = session.execute(
            select(
                func.count(Submission.id),
                func.count(Submission.exported_on),
                func.min(Submission.received_on),
            )
        ).one()
        unread = session.scalar(select(func.count(Reply.id)).where(Reply.read_on.is_(None)))
    size = directory_size(data_dir / ENVELOPE_DIR)
    return Figures(
        int(waiting), int(waiting) - int(exported), int(exported), oldest, size, int(unread or 0)
    )
