"""Attachments in the case store: their files, and the lists their reports give.

An attachment's file is written into its case's folder, ``<store>/<thread_id>/``
(mode 0700), first as a temporary file (mode 0600), and takes the desk's own
name, ``attachment-<id>`` and a plain extension (``attachment.file_name``),
only once its size and SHA-256 are right and its rows are staged: nothing of
a refused attachment stays on disk, and nothing the sender wrote is ever part
of a path. The reports of a case list their attachments (FORMAT.md §15.1);
:func:`match` pairs them with the files by id and checks size and SHA-256.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import attachment, bundle
from portal.attachment import AttachmentError, Metadata, check_listing
from portal.desk.casestore import OPENED, Attachment, Case, Item
from portal.desk.contents import one_line
from portal.desk.output import AtomicOutput
from portal.desk.streams import os_error

TEMP_NAME = ".attachment"


class Failure(Exception):
    """An item that cannot be opened or used; ``name`` is stored with it."""

    def __init__(self, name: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.name, self.message, self.hint = name, message, hint


class Deferred(Exception):
    """An attachment whose case has no opened report yet (its report may come later)."""


def case_folder(store: Path, thread_id: str) -> Path:
    """The folder of a case's files; ``thread_id`` is 32 checked hex digits."""
    return store / thread_id


class Incoming:
    """Where one item's attachment file goes while it is decrypted and checked."""

    def __init__(self, db: Session, store: Path, item: bundle.Item, defer: bool) -> None:
        self.db, self.store, self.item, self.defer = db, store, item, defer
        self.output: AtomicOutput | None = None
        self.published: Path | None = None

    def open(self, stack: ExitStack) -> BinaryIO:
        """The temporary file in the case's folder (entered on ``stack``, which publishes it)."""
        if self.db.get(Case, self.item.thread_id) is None:
            if self.defer:
                raise Deferred
            raise Failure(
                "NoReport",
                f"item {self.item.id} is an attachment, but no report of its case"
                f" {self.item.thread_id} has opened",
                "Its report failed or has not been exported yet; the attachment is not"
                " acknowledged, so the server keeps it for the next export.",
            )
        folder = case_folder(self.store, self.item.thread_id)
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
        except OSError as err:
            raise os_error(err, f"cannot create the case folder {folder}") from None
        # A file left by an interrupted import (published, never committed) is replaced.
        self.output = AtomicOutput(folder / TEMP_NAME, overwrite=True)
        return stack.enter_context(self.output)

    def name(self, meta: Metadata) -> str:
        """Give the file its final name (it is published when the block ends)."""
        if self.output is None:
            raise RuntimeError("the attachment's file was never opened")
        final = case_folder(self.store, self.item.thread_id) / attachment.file_name(meta)
        self.output.path = os.fspath(final)
        self.published = final
        return final.name

    def remove_published(self) -> None:
        """Remove the published file when its rows could not be committed."""
        if self.published is not None:
            with contextlib.suppress(FileNotFoundError):
                self.published.unlink()


def fill_item(row: Item, item: bundle.Item, today: dt.date) -> None:
    """The columns every opened item has, from the bundle's (checked) description of it."""
    row.thread_id = item.thread_id
    row.exported_thread_id = item.thread_id
    row.received_on = item.received_on
    row.sealed_by = item.sealed_by
    row.sha256 = item.sha256
    row.status = OPENED
    row.error = row.error_message = None
    row.imported_on = today


def store_attachment(
    db: Session, incoming: Incoming, existing: Item | None, meta: Metadata, today: dt.date
) -> None:
    """Stage an opened attachment's rows and name its file; raises :class:`Failure`."""
    item = incoming.item
    case = db.get(Case, item.thread_id)
    if case is None or not hmac.compare_digest(case.reply_public_key, item.reply_public_key):
        raise Failure(
            "ReplyKeySwapped",
            f"item {item.id}: THE SERVER GIVES THIS ATTACHMENT'S THREAD ANOTHER REPLY KEY than"
            " the one sealed in the case's report",
            "Do not reply to this case; report the server as compromised.",
        )
    clash = db.scalars(
        select(Attachment).where(
            Attachment.thread_id == item.thread_id,
            Attachment.attachment_id == meta.id,
            Attachment.item_id != item.id,
        )
    ).first()
    if clash is not None:
        raise Failure(
            "DuplicateAttachment",
            f"item {item.id}: attachment {meta.id} is already in case {item.thread_id}"
            f" (item {clash.item_id})",
            "Two envelopes claim to be the same file; the first was kept. Report it.",
        )
    case.first_on = min(case.first_on, item.received_on)
    row = existing or Item(id=item.id)
    fill_item(row, item, today)
    row.document = attachment.encode_metadata(meta).decode("utf-8")
    row.problems = "[]"
    db.add(row)
    db.flush()
    db.add(
        Attachment(
            item_id=item.id,
            thread_id=item.thread_id,
            attachment_id=meta.id,
            name=meta.name,
            media_type=meta.media_type,
            size=meta.size,
            sha256=bytes.fromhex(meta.sha256),
            file_name=incoming.name(meta),
        )
    )
    db.flush()


# Matching files with the reports' lists ------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """An attachment a report of the case lists, and that report's item id."""

    meta: Metadata
    item_id: str


@dataclass(frozen=True)
class Matching:
    """A case's files, each ``listed``, ``different`` (size or SHA-256) or ``unexpected``,
    and the listed attachments no file was imported for."""

    files: tuple[tuple[Attachment, str], ...]
    missing: tuple[Listed, ...]


def listed_in(document: str | None) -> tuple[Metadata, ...]:
    """The attachments a stored report document lists (none when its list is malformed,
    which import flagged)."""
    obj = json.loads(document or "{}")
    value = obj.get("attachments") if isinstance(obj, dict) else None
    if value is None:
        return ()
    try:
        return check_listing(value)
    except AttachmentError:
        return ()


def match(case: Case) -> Matching:
    """Pair the case's attachment files with its reports' lists by id."""
    listed: dict[str, Listed] = {}
    for item in case.items:
        if item.attachment is None:
            for meta in listed_in(item.document):
                listed.setdefault(meta.id, Listed(meta, item.id))
    files = []
    for item in case.items:
        found = item.attachment
        if found is None:
            continue
        entry = listed.get(found.attachment_id)
        status = "unexpected" if entry is None else "listed"
        if entry is not None and (entry.meta.size, entry.meta.sha256) != (
            found.size,
            found.sha256.hex(),
        ):
            status = "different"
        files.append((found, status))
    present = {found.attachment_id for found, _ in files}
    missing = tuple(entry for key, entry in listed.items() if key not in present)
    return Matching(tuple(files), missing)


def with_attachments(db: Session, threads: set[str]) -> list[str]:
    """Those of ``threads`` whose case has attachment files or a report that lists some
    (two queries, so that a bundle of reports alone costs nothing more)."""
    files = set(db.scalars(select(Attachment.thread_id).distinct()))
    # The key is unescaped only as a member name: inside a text, JSON escapes its quotes.
    listing = db.scalars(
        select(Item.thread_id)
        .where(Item.status == OPENED, Item.document.contains('"attachments"'))
        .distinct()
    )
    return sorted((files | {t for t in listing if t is not None}) & threads)


def case_problems(case: Case | None) -> list[tuple[str, str]]:
    """An error and a hint for each file that is unexpected or different, and each missing."""
    if case is None:
        return []
    found = match(case)
    problems = []
    for row, status in found.files:
        what = f"case {case.thread_id}: attachment {row.attachment_id} ({one_line(row.name)!r})"
        if status == "different":
            problems.append(
                (
                    f"{what} is not the file its report lists: the size or SHA-256 differ",
                    "Do not rely on this file; the sealer or the server is not honest. Report it.",
                )
            )
        elif status == "unexpected":
            problems.append(
                (
                    f"{what} is listed by no report of this case",
                    "A follow-up listing it may come in a later export; until then treat it with"
                    " suspicion: anyone can seal a file to the team's keys.",
                )
            )
    for entry in found.missing:
        problems.append(
            (
                f"case {case.thread_id}: attachment {entry.meta.id} ({one_line(entry.meta.name)!r},"
                f" {entry.meta.size} bytes), listed by item {entry.item_id}, is missing",
                "It may have failed above or come in a later export; if the server no longer has"
                " it, ask the submitter to send it again.",
            )
        )
    return problems
