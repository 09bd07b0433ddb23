"""``portal-desk import``, ``cases`` and ``show``: export bundles into the local case store.

Import checks the whole bundle's structure first (nothing is written for a
malformed bundle), unlocks the secret keys the bundle's items name (every
passphrase prompt comes before the first write), then takes the items one
by one, **one transaction per item**: an item's row (and its case, when it
is the thread's first) is committed whole or not at all, so an interrupted
import leaves complete rows only, and importing again finishes the job. An
item already opened with the same digest is left untouched, which makes a
second import of the same bundle change nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import re
import sys
from argparse import Namespace
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nacl.public import PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from portal import bundle, envelope, keyfile
from portal.desk import followups, lostbundle, passphrase
from portal.desk.casestore import FAILED, OPENED, Case, Item, open_store, session
from portal.desk.documents import Checked, DocumentRefused, check
from portal.desk.errors import DeskError
from portal.desk.streams import os_error
from portal.report import BY_NAME, FIELDS, SECTIONS

# Reports are small (FORMAT.md §15.2: the largest is well under 1 MiB); attachments come later.
MAX_REPORT_PADDED = 1 << 20
PROG = "portal-desk"


@dataclass
class Outcome:
    """What happened to one item."""

    item_id: str
    state: str  # "new", "unchanged", "failed"
    ok: bool
    message: str = ""
    hint: str = ""
    new_case: bool = False
    again: bool = False  # returned before, but in this export again (BUNDLES.md §8.5)


class _Failure(Exception):
    """An item that cannot be opened or used; ``name`` is stored with it."""

    def __init__(self, name: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.name, self.message, self.hint = name, message, hint


def import_bundle(args: Namespace) -> int:
    """Import every item of the bundle into the case store; exit 0 only if all opened cleanly."""
    locked = [keyfile.read(p) for p in args.secret_key]
    given = _passphrases(args.passphrase_file or [], len(locked))
    try:
        opened = bundle.read_export(args.bundle)
    except OSError as err:
        raise os_error(err, f"cannot read {args.bundle}") from None
    with opened:
        identities = _unlock(opened.items, locked, given)
        engine = open_store(args.store, create=True)
        try:
            today = dt.datetime.now(dt.UTC).date()
            outcomes = [
                _import_item(engine, opened, item, identities, today) for item in opened.items
            ]
        finally:
            engine.dispose()
    return _summarise(outcomes)


def _passphrases(files: list[str], keys: int) -> list[str | None]:
    """One --passphrase-file for every key, or one per --secret-key in the same order."""
    if not files:
        return [None] * keys
    if len(files) not in (1, keys):
        hint = "Give one --passphrase-file for all keys, or one per --secret-key, in order."
        raise DeskError(f"{len(files)} passphrase files for {keys} secret keys", hint)
    phrases: list[str | None] = [passphrase.from_file(f) for f in files]
    return phrases * keys if len(phrases) == 1 else phrases


def _unlock(
    items: Iterable[bundle.Item], locked: list[keyfile.LockedKey], given: list[str | None]
) -> list[PrivateKey]:
    """Unlock each given key that some item was sealed to (asking now, before any write)."""
    wanted = {kid for item in items for kid in item.recipient_key_ids}
    identities: list[PrivateKey] = []
    for key, phrase in zip(locked, given, strict=True):
        if key.recipient.key_id in wanted:
            if phrase is None:
                prompt = f"Passphrase for {key.recipient.label!r} ({key.recipient.fingerprint}): "
                phrase = passphrase.ask(prompt)
            identities.append(key.unlock(phrase))
    return identities


def _import_item(
    engine: Any,
    source: bundle.Bundle,
    item: bundle.Item,
    identities: list[PrivateKey],
    today: dt.date,
) -> Outcome:
    with session(engine) as db:
        existing = db.get(Item, item.id)
        if existing is not None and existing.status == OPENED:
            outcome = _already_opened(existing, item)
            outcome.again = lostbundle.reappeared(db, existing, item.sha256)
            return outcome
        try:
            checked = _open(source, item, identities)
            new_case = _store_opened(db, existing, item, checked, today)
        except _Failure as failure:
            db.rollback()
            return _store_failed(db, existing, item, failure, today)
        db.commit()
    problems = checked.problems
    if problems:
        message = f"item {item.id}: the report holds content outside the form (stored, flagged):"
        message += " " + "; ".join(problems)
        hint = f"Read it with `portal-desk show {item.thread_id}` before relying on it."
        return Outcome(item.id, "new", False, message, hint, new_case)
    return Outcome(item.id, "new", True, new_case=new_case)


def _already_opened(existing: Item, item: bundle.Item) -> Outcome:
    if not hmac.compare_digest(existing.sha256, item.sha256):
        return Outcome(
            item.id,
            "failed",
            False,
            f"item {item.id} is already in the store with a different envelope;"
            " the server now sends other bytes under the same id",
            "The stored copy was kept. Treat the server as suspect and report it.",
        )
    problems = json.loads(existing.problems)
    if problems:
        message = f"item {item.id} was imported before and is flagged: " + "; ".join(problems)
        return Outcome(
            item.id, "unchanged", False, message, f"See `portal-desk show {item.thread_id}`."
        )
    return Outcome(item.id, "unchanged", True)


def _open(source: bundle.Bundle, item: bundle.Item, identities: list[PrivateKey]) -> Checked:
    if item.padded_size > MAX_REPORT_PADDED:
        raise _Failure(
            "TooLarge",
            f"item {item.id} is {item.padded_size} bytes (padded), over the"
            f" {MAX_REPORT_PADDED >> 20} MiB a report can be; it may hold an attachment",
            "This portal-desk imports reports only; attachments need a later version.",
        )
    try:
        data = source.read(item)
        header = envelope.parse_header(data)
    except (bundle.BundleError, envelope.EnvelopeError) as err:
        raise _Failure(type(err).__name__, f"item {item.id}: {err}", err.hint) from None
    path = header.path.name.lower()
    if (path, header.key_ids, header.padded_size) != (
        item.sealed_by,
        item.recipient_key_ids,
        item.padded_size,
    ):
        raise _Failure(
            "ManifestMismatch",
            f"item {item.id}: bundle.json describes its envelope wrongly"
            " (sealing path, recipients or size)",
            "The server's metadata is wrong; the item is not acknowledged. Report it.",
        )
    try:
        plaintext = envelope.open_bytes(data, identities)
    except envelope.NoMatchingKey:
        raise _Failure(
            "NoMatchingKey",
            f"item {item.id} was not sealed to any secret key given",
            "Import again with the key it was sealed to (--secret-key); the others are kept.",
        ) from None
    except envelope.EnvelopeError as err:
        raise _Failure(type(err).__name__, f"item {item.id}: {err}", err.hint) from None
    try:
        if followups.is_followup(plaintext):
            return followups.check(plaintext, path, item.reply_public_key, identities)
        return check(plaintext, path, item.reply_public_key)
    except DocumentRefused as err:
        raise _Failure(err.name, f"item {item.id}: {err}", err.hint) from None


def _store_opened(
    db: Session, existing: Item | None, item: bundle.Item, checked: Checked, today: dt.date
) -> bool:
    reply_key = base64.b64decode(checked.document["reply_public_key"])
    case = db.get(Case, item.thread_id)
    new_case = case is None
    if case is None:
        case = Case(thread_id=item.thread_id, reply_public_key=reply_key, first_on=item.received_on)
        db.add(case)
    elif not hmac.compare_digest(case.reply_public_key, reply_key):
        raise _Failure(
            "ReplyKeySwapped",
            f"item {item.id}: its reply key differs from the one this case already has",
            "Do not reply to this case; report the server as compromised.",
        )
    case.first_on = min(case.first_on, item.received_on)
    row = existing or Item(id=item.id)
    row.thread_id = item.thread_id
    row.exported_thread_id = item.thread_id
    row.received_on = item.received_on
    row.sealed_by = item.sealed_by
    row.sha256 = item.sha256
    row.status = OPENED
    row.error = row.error_message = None
    row.document = json.dumps(checked.document, ensure_ascii=False)
    row.problems = json.dumps(list(checked.problems), ensure_ascii=False)
    row.imported_on = today
    db.add(row)
    db.flush()
    return new_case


def _store_failed(
    db: Session, existing: Item | None, item: bundle.Item, failure: _Failure, today: dt.date
) -> Outcome:
    outcome = Outcome(item.id, "failed", False, failure.message, failure.hint)
    if existing is not None and existing.error == failure.name and existing.sha256 == item.sha256:
        return outcome
    row = existing or Item(id=item.id)
    row.thread_id = None
    row.exported_thread_id = item.thread_id
    row.received_on = item.received_on
    row.sealed_by = item.sealed_by
    row.sha256 = item.sha256
    row.status = FAILED
    row.error = failure.name
    row.error_message = failure.message
    row.document = None
    row.problems = "[]"
    row.imported_on = today
    db.add(row)
    db.commit()
    return outcome


def _summarise(outcomes: list[Outcome]) -> int:
    for outcome in outcomes:
        if not outcome.ok:
            fail(outcome.message, outcome.hint)
    new = sum(o.state == "new" for o in outcomes)
    unchanged = sum(o.state == "unchanged" for o in outcomes)
    failed = sum(o.state == "failed" for o in outcomes)
    cases = sum(o.new_case for o in outcomes)
    lostbundle.note_again(sum(o.again for o in outcomes))
    if new == 0 and failed == 0:
        note(f"nothing changed: all {unchanged} items were already in the case store")
    else:
        note(
            f"{new} items imported ({cases} new cases), {unchanged} already in the store,"
            f" {failed} failed"
        )
    return 0 if all(o.ok for o in outcomes) else 1


# Listing and showing ---------------------------------------------------------------------


def cases(args: Namespace) -> int:
    """List the cases: first day, country, acts, consent to publication, urgency, items."""
    engine = open_store(args.store, create=False)
    try:
        with session(engine) as db:
            rows = db.scalars(
                select(Case)
                .options(selectinload(Case.items))
                .order_by(Case.first_on, Case.thread_id)
            )
            unread = followups.unread_counts(db)
            lines = [_case_line(case) + followups.unread_suffix(unread, case) for case in rows]
            failed = len(db.scalars(select(Item.id).where(Item.status == FAILED)).all())
    finally:
        engine.dispose()
    header = (
        f"{'case':<32}  {'first day':<10}  {'country':<20}  {'publication':<11}"
        "  urgent  items  acts"
    )
    emit("\n".join([header, *lines]) + "\n")
    if failed:
        note(f"{failed} items failed to open and belong to no case; import again to retry them")
    return 0


def _case_line(case: Case) -> str:
    fields = followups.current_fields(case.items)  # consent as follow-ups changed it
    listed = fields.get("acts")
    # A planted report may hold anything here; it is shown, never allowed to crash the listing.
    acts = ", ".join(str(a) for a in listed) if isinstance(listed, list) else ""
    country = _plain(str(fields.get("country", "")))[:20]
    publication = _plain(str(fields.get("consent_publication", "")))[:11]
    urgent = "URGENT" if fields.get("urgent") is True else ""
    return (
        f"{case.thread_id:<32}  {case.first_on.isoformat():<10}  {country:<20}  {publication:<11}"
        f"  {urgent:<6}  {len(case.items):>5}  {_plain(acts)}"
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
            emit(_render(case, list(failed)))
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
        select(Case).options(selectinload(Case.items)).where(Case.thread_id.startswith(wanted))
    ).all()
    if not found:
        raise DeskError(f"no case {wanted} in the store", "Run `portal-desk cases` to list them.")
    if len(found) > 1:
        raise DeskError(f"{wanted} names {len(found)} cases", "Give more of the case id.")
    return found[0]


def _render(case: Case, failed: list[Item]) -> str:
    key = base64.b64encode(case.reply_public_key).decode()
    out = [
        f"Case {case.thread_id}",
        f"First received: {case.first_on.isoformat()}",
        f"Reply key: {key} (the one sealed in the report, checked against the server's)",
        f"Items: {len(case.items)}",
    ]
    for item in case.items:
        render = followups.render if followups.is_followup_item(item) else _render_item
        out += ["", *render(item)]
    for item in failed:
        message = _plain(item.error_message or "")
        out += ["", f"Item {item.id}: FAILED to open ({item.error}): {message}"]
    return "\n".join(out) + "\n"


def _render_item(item: Item) -> list[str]:
    document = json.loads(item.document or "{}")
    fields = document.get("fields", {})
    out = [
        f"Item {item.id}",
        f"  Received {item.received_on.isoformat()}, sealed by {item.sealed_by},"
        f" imported {item.imported_on.isoformat()}",
    ]
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


_TOP = {"type", "version", "sealed_by", "reply_public_key", "fields"}


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


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _plain(text: str) -> str:
    """Text safe for a terminal: control characters (escape sequences, bidi overrides) shown
    as a backslash-u escape with four hex digits instead of acting on the screen; line feeds
    and tabs kept."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def emit(text: str) -> None:
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def note(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def fail(message: str, hint: str) -> None:
    sys.stderr.write(f"{PROG}: error: {_plain(message)}\n{PROG}: hint: {hint}\n")
    sys.stderr.flush()
