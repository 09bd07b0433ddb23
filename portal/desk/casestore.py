"""The desk's case store: a local SQLite file of decrypted reports, one case per thread.

Attachments are files beside it, one folder per case (``<store>/<thread_id>/``).

It lives in a directory the operator chooses (``--store DIR``, created with
mode 0700), on the air-gapped laptop only, and has its own metadata: it
shares nothing with the server's models. Imported only by the commands
that use it, so ``keygen``, ``seal``, ``decrypt`` and ``inspect`` still load
no database module. SQLAlchemy here never comes with Flask or Werkzeug.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Engine,
    ForeignKey,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from portal.desk.errors import DeskError
from portal.desk.streams import os_error

STORE_FILE = "cases.sqlite3"
OPENED = "opened"
FAILED = "failed"


class CaseBase(DeclarativeBase):
    metadata = MetaData()


class Case(CaseBase):
    """One thread: the reports and follow-ups that one receipt can find."""

    __tablename__ = "cases"

    thread_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The key sealed *inside* the first report (checked against the server's export).
    reply_public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    first_on: Mapped[dt.date] = mapped_column(Date)

    items: Mapped[list[Item]] = relationship(back_populates="case", order_by="Item.received_on")


class Item(CaseBase):
    """One imported envelope: opened (with its document) or failed (with the error's name)."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint("status IN ('opened', 'failed')", name="status_known"),
        CheckConstraint(
            "(status = 'opened') = (document IS NOT NULL AND thread_id IS NOT NULL)",
            name="opened_has_document",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Failed items belong to no case: their thread and reply key are the server's word only.
    thread_id: Mapped[str | None] = mapped_column(ForeignKey("cases.thread_id"), index=True)
    exported_thread_id: Mapped[str] = mapped_column(String(32))
    received_on: Mapped[dt.date] = mapped_column(Date)
    sealed_by: Mapped[str] = mapped_column(String(7))
    # The SHA-256 of the envelope as the desk received it: what a return bundle acknowledges.
    sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    status: Mapped[str] = mapped_column(String(6))
    error: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    # The decrypted report document, exactly as decrypted (UTF-8 JSON text).
    document: Mapped[str | None] = mapped_column(Text)
    # A JSON list of problems (content outside the form); "[]" when clean.
    problems: Mapped[str] = mapped_column(Text, default="[]")
    imported_on: Mapped[dt.date] = mapped_column(Date)

    case: Mapped[Case | None] = relationship(back_populates="items")
    # Set when the item is an attachment (FORMAT.md §15.6) rather than a report.
    attachment: Mapped[Attachment | None] = relationship(back_populates="item")


class Attachment(CaseBase):
    """An opened attachment item: its checked metadata and the file the desk wrote for it.

    The file is ``<store>/<thread_id>/<file_name>``, a name the desk chose
    (``attachment-<id>`` and a plain extension); ``name`` is the sender's,
    kept as text only. A table of its own, added to an older store by
    ``create_all``.
    """

    __tablename__ = "attachments"
    __table_args__ = (UniqueConstraint("thread_id", "attachment_id"),)

    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("cases.thread_id"), index=True)
    attachment_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    file_name: Mapped[str] = mapped_column(String(64))

    item: Mapped[Item] = relationship(back_populates="attachment")


class Returned(CaseBase):
    """An item acknowledged in a return bundle (``portal-desk return``), and the day it was.

    A table of its own, so that a case store made before return bundles
    existed gains it without a migration (``create_all`` adds missing tables).
    """

    __tablename__ = "returned"

    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    returned_on: Mapped[dt.date] = mapped_column(Date)


class Reply(CaseBase):
    """A reply sealed on the desk (``portal-desk reply``), pending until a return bundle carries it.

    The envelope is sealed to the case's reply key and to the team's keys, so
    the desk can read its own copy; nothing else of the reply is kept here.
    A table of its own, added to an older store by ``create_all``.
    """

    __tablename__ = "replies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("cases.thread_id"), index=True)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    written_on: Mapped[dt.date] = mapped_column(Date)
    # The day a return bundle carried it; NULL while pending.
    returned_on: Mapped[dt.date | None] = mapped_column(Date)


def _pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", hide_parameters=True)
    event.listen(engine, "connect", _pragmas)
    return engine


def open_store(directory: str, create: bool) -> Engine:
    """The store in ``directory``; with ``create``, make the directory (0700) and the tables."""
    folder = Path(directory)
    path = folder / STORE_FILE
    if create:
        if not folder.parent.is_dir():
            hint = "Create the parent directory first, or choose another --store."
            raise DeskError(f"the directory for the case store {folder} does not exist", hint)
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
        except OSError as err:
            raise os_error(err, f"cannot create the case store {folder}") from None
        if not folder.is_dir():
            raise DeskError(f"{folder} is not a directory", "Give --store a directory.")
        engine = _engine(path)
        CaseBase.metadata.create_all(engine)
        # Decrypted reports live here: private whatever the modes were before.
        os.chmod(folder, 0o700)
        os.chmod(path, 0o600)
        return engine
    if not path.is_file():
        hint = "Give the --store directory you imported into (portal-desk import --store DIR)."
        raise DeskError(f"there is no case store in {folder}", hint)
    engine = _engine(path)
    CaseBase.metadata.create_all(engine)  # tables added since the store was made
    return engine


def session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)
