"""``portal-desk cases`` and ``show``: the case store, read on the desk's own screen.

``import`` lives in ``importing.py``. Every text that came from a submitter
(answers, attachment names) is shown with control characters escaped.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from argparse import Namespace
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from portal.desk import followups
from portal.desk.attachments import Matching, case_folder, listed_in, match
from portal.desk.casestore import FAILED, Case, Item, open_store, session
from portal.desk.contents import one_line, plain
from portal.desk.errors import DeskError
from portal.report import BY_NAME, FIELDS, SECTIONS

PROG = "portal-desk"


# Listing and showing ---------------------------------------------------------------------


def cases(args: Namespace) -> int:
    """List the cases: first day, country, acts, consent to publication, urgency, items,
    attachment files and listed attachments that are missing."""
    engine = open_store(args.store, create=False)
    try:
        with session(engine) as db:
            rows = db.scalars(
                select(Case)
                .options(selectinload(Case.items).selectinload(Item.attachment))
                .order_by(Case.first_on, Case.thread_id)
            )
            unread = followups.unread_counts(db)
            lines = [_case_line(case) + followups.unread_suffix(unread, case) for case in rows]
            failed = len(db.scalars(select(Item.id).where(Item.status == FAILED)).all())
    finally:
        engine.dispose()
    header = (
        f"{'case':<32}  {'first day':<10}  {'country':<20}  {'publication':<11}"
        "  urgent  items  files  missing  acts"
    )
    emit("\n".join([header, *lines]) + "\n")
    if failed:
        note(f"{failed} items failed to open and belong to no case; import again to retry them")
    return 0


def _case_line(case: Case) -> str:
    reports = [item for item in case.items if item.attachment is None]
    fields = followups.current_fields(reports)  # consent as follow-ups changed it
    listed = fields.get("acts")
    # A planted report may hold anything here; it is shown, never allowed to crash the listing.
    acts = ", ".join(str(a) for a in listed) if isinstance(listed, list) else ""
    country = _plain(str(fields.get("country", "")))[:20]
    publication = _plain(str(fields.get("consent_publication", "")))[:11]
    urgent = "URGENT" if fields.get("urgent") is True else ""
    found = match(case)
    return (
        f"{case.thread_id:<32}  {case.first_on.isoformat():<10}  {country:<20}  {publication:<11}"
        f"  {urgent:<6}  {len(case.items):>5}  {len(found.files):>5}  {len(found.missing):>7}"
        f"  {_plain(acts)}"
    )


def show(args: Namespace) -> int:
    """Print one case's items as readable text (this is the desk's own screen)."""
    engine = open_store(args.store, create=False)
    try:
        with session(engine) as db:
            case = _find(db, args.case)
            failed = db.scalars(
                select(Item).where(Item.exported_thread_id == case.thread_id, Item.status == FAILED)
            ).all()
            folder = case_folder(Path(args.store), case.thread_id)
            emit(_render(case, list(failed), folder))
            followups.mark_read(db, case)  # only once they were printed
    finally:
        engine.dispose()
    return 0


def _find(db: Session, wanted: str) -> Case:
    wanted = wanted.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{4,32}", wanted):
        raise DeskError(
            f"{wanted!r} is not a case id", "Give an id as `portal-desk cases` lists it."
        )
    found = db.scalars(
        select(Case)
        .options(selectinload(Case.items).selectinload(Item.attachment))
        .where(Case.thread_id.startswith(wanted))
    ).all()
    if not found:
        raise DeskError(f"no case {wanted} in the store", "Run `portal-desk cases` to list them.")
    if len(found) > 1:
        raise DeskError(f"{wanted} names {len(found)} cases", "Give more of the case id.")
    return found[0]


def _render(case: Case, failed: list[Item], folder: Path) -> str:
    key = base64.b64encode(case.reply_public_key).decode()
    found = match(case)
    out = [
        f"Case {case.thread_id}",
        f"First received: {case.first_on.isoformat()}",
        f"Reply key: {key} (the one sealed in the report, checked against the server's)",
        f"Items: {len(case.items)}",
        f"Attachments: {len(found.files)} files in {os.fspath(folder)}"
        f", {len(found.missing)} listed but missing",
    ]
    for item in case.items:
        if followups.is_followup_item(item):
            out += ["", *followups.render(item), *_render_listed(item, found, folder)]
        else:
            out += ["", *_received(item), *_render_item(item, found, folder)]
    for item in failed:
        message = _plain(item.error_message or "")
        out += ["", f"Item {item.id}: FAILED to open ({item.error}): {message}"]
    return "\n".join(out) + "\n"


def _received(item: Item) -> list[str]:
    return [
        f"Item {item.id}",
        f"  Received {item.received_on.isoformat()}, sealed by {item.sealed_by},"
        f" imported {item.imported_on.isoformat()}",
    ]


STATUS = {
    "listed": "as the report or follow-up that lists it says",
    "different": "DIFFERENT from what its report lists (size or SHA-256): do not rely on it",
    "unexpected": "NOT LISTED by any report of this case",
}


def _render_item(item: Item, found: Matching, folder: Path) -> list[str]:
    row = item.attachment
    if row is None:
        return [*_render_report(item), *_render_listed(item, found, folder)]
    status = next(s for f, s in found.files if f.item_id == item.id)
    return [
        f"  Attachment {row.attachment_id}: {one_line(row.name)!r}",
        f"    Type: {one_line(row.media_type) or '(none given)'}; {row.size} bytes;"
        f" SHA-256 {row.sha256.hex()} (verified)",
        f"    File: {os.fspath(folder / row.file_name)}",
        f"    {STATUS[status]}",
    ]


def _render_listed(item: Item, found: Matching, folder: Path) -> list[str]:
    listed = listed_in(item.document)
    if not listed:
        return []
    files = {row.attachment_id: (row, status) for row, status in found.files}
    out = ["", f"  Attachments listed ({len(listed)})"]
    for meta in listed:
        present = files.get(meta.id)
        if present is None:
            where = "MISSING: not imported"
        elif present[1] == "different":
            where = f"DIFFERENT file imported: {os.fspath(folder / present[0].file_name)}"
        else:
            where = os.fspath(folder / present[0].file_name)
        out.append(f"    - {one_line(meta.name)!r} ({meta.size} bytes, id {meta.id}): {where}")
    return out


def _render_report(item: Item) -> list[str]:
    document = json.loads(item.document or "{}")
    fields = document.get("fields", {})
    out: list[str] = []
    for section, title in SECTIONS:
        answers = [f for f in FIELDS if f.section == section and f.name in fields]
        if answers:
            out += ["", f"  {title}"]
        for spec in answers:
            out += _answer(spec.label, _display(spec.name, fields[spec.name]))
    problems = json.loads(item.problems)
    if problems:
        out += ["", "  WARNING: content outside the form (kept exactly as sent):"]
        out += [f"    - {_plain(p)}" for p in problems]
        extra = {k: v for k, v in fields.items() if k not in BY_NAME}
        extra.update({k: v for k, v in document.items() if k not in _TOP})
        for name, value in extra.items():
            out += _answer(f"Unexpected {name!r}", json.dumps(value, ensure_ascii=False))
    return out


_TOP = {"type", "version", "sealed_by", "reply_public_key", "fields", "attachments"}


def _display(name: str, value: object) -> str:
    spec = BY_NAME[name]
    labels = dict(spec.choices)
    if spec.kind == "flag":
        return "Yes" if value is True else json.dumps(value, ensure_ascii=False)
    if spec.kind == "multi" and isinstance(value, list):
        return "; ".join(
            labels.get(v, f"{v!r} (not a choice)") if isinstance(v, str) else repr(v) for v in value
        )
    if spec.kind == "choice" and isinstance(value, str):
        return labels.get(value, f"{value!r} (not a choice)")
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _answer(label: str, value: str) -> list[str]:
    lines = _plain(value.replace("\r\n", "\n")).split("\n")
    return [f"    {_plain(label)}: {lines[0]}", *(f"      {line}" for line in lines[1:])]


_plain = plain


def emit(text: str) -> None:
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def note(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def fail(message: str, hint: str) -> None:
    sys.stderr.write(f"{PROG}: error: {_plain(message)}\n{PROG}: hint: {hint}\n")
    sys.stderr.flush()
