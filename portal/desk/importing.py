"""``portal-desk import``: an export bundle's reports and attachments into the case store.

Import checks the whole bundle's structure first (nothing is written for a
malformed bundle), unlocks the secret keys the bundle's items name (every
passphrase prompt comes before the first write), then takes the items one
by one, **one transaction per item**: an item's rows (and its case, when it
is the thread's first report) are committed whole or not at all, so an
interrupted import leaves complete rows only, and importing again finishes
the job. An item already opened with the same digest is left untouched,
which makes a second import of the same bundle change nothing.

Each envelope is decrypted as it streams out of the bundle; its content
says what it is (``portal.desk.contents``). A report is kept in memory (at
most :data:`MAX_REPORT` bytes) and checked (``documents.check``). An
attachment's file goes to a temporary file in its case's folder, named by
the desk only once its size and SHA-256 are right (``attachments.py``);
an attachment whose case has no opened report yet waits until the other
items of the bundle are in.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hmac
import io
import json
import sys
from argparse import Namespace
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from nacl.public import PrivateKey
from sqlalchemy.orm import Session

from portal import attachment, bundle, envelope, keyfile
from portal.desk import followups, lostbundle, passphrase
from portal.desk.attachments import (
    Deferred,
    Failure,
    Incoming,
    case_problems,
    fill_item,
    store_attachment,
    with_attachments,
)
from portal.desk.casestore import FAILED, OPENED, Case, Item, open_store, session
from portal.desk.contents import Content, TooLarge, plain
from portal.desk.documents import Checked, DocumentRefused, check
from portal.desk.errors import DeskError
from portal.desk.streams import os_error

# Reports are small (FORMAT.md §15.2: the largest document is about 600 KB).
MAX_REPORT = 1 << 20
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
            job = _Job(Path(args.store), opened, identities, dt.datetime.now(dt.UTC).date())
            outcomes = job.run(engine)
            with session(engine) as db:
                threads = with_attachments(db, {item.thread_id for item in opened.items})
                problems = [p for t in threads for p in case_problems(db.get(Case, t))]
        finally:
            engine.dispose()
    return _summarise(outcomes, problems)


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


@dataclass
class _Job:
    store: Path
    source: bundle.Bundle
    identities: list[PrivateKey]
    today: dt.date

    def run(self, engine: Any) -> list[Outcome]:
        """Every item in order; attachments that arrive before their report, once more after."""
        outcomes: list[Outcome] = []
        waiting = []
        for item in self.source.items:
            outcome = self.one(engine, item, defer=True)
            if outcome is None:
                waiting.append(item)
            else:
                outcomes.append(outcome)
        for item in waiting:
            outcome = self.one(engine, item, defer=False)
            assert outcome is not None  # noqa: S101 (never deferred twice)
            outcomes.append(outcome)
        return outcomes

    def one(self, engine: Any, item: bundle.Item, defer: bool) -> Outcome | None:
        with session(engine) as db:
            existing = db.get(Item, item.id)
            if existing is not None and existing.status == OPENED:
                outcome = _already_opened(existing, item)
                outcome.again = lostbundle.reappeared(db, existing, item.sha256)
                return outcome
            incoming = Incoming(db, self.store, item, defer)
            try:
                new_case, problems = self._open(db, item, existing, incoming)
            except Deferred:
                db.rollback()
                return None
            except Failure as failure:
                db.rollback()
                return _store_failed(db, existing, item, failure, self.today)
            try:
                db.commit()
            except BaseException:
                incoming.remove_published()
                raise
        if problems:
            message = f"item {item.id}: the report holds content outside the form (stored,"
            message += " flagged): " + "; ".join(problems)
            hint = f"Read it with `portal-desk show {item.thread_id}` before relying on it."
            return Outcome(item.id, "new", False, message, hint, new_case)
        return Outcome(item.id, "new", True, new_case=new_case)

    def _open(
        self, db: Session, item: bundle.Item, existing: Item | None, incoming: Incoming
    ) -> tuple[bool, tuple[str, ...]]:
        """Decrypt, check and stage the item's rows (and publish an attachment's file)."""
        with self.source.open(item) as stream, contextlib.ExitStack() as stack:
            header, raw = _header(stream, item)
            report = io.BytesIO()
            content = Content.for_header(
                header,
                lambda: report,
                lambda: incoming.open(stack),
                report_limit=MAX_REPORT,
            )
            _decrypt(stream, (header, raw), content, item, self.identities)
            meta = _finish(content, item)
            if meta is not None:
                store_attachment(db, incoming, existing, meta, self.today)
                return False, ()
            checked = _checked(report.getvalue(), header, item, self.identities)
            return _store_report(db, existing, item, checked, self.today), checked.problems


def _header(stream: BinaryIO, item: bundle.Item) -> tuple[envelope.Header, bytes]:
    try:
        header, raw = envelope.read_header(stream)
    except (bundle.BundleError, envelope.EnvelopeError) as err:
        raise Failure(type(err).__name__, f"item {item.id}: {err}", err.hint) from None
    path = header.path.name.lower()
    if (path, header.key_ids, header.padded_size) != (
        item.sealed_by,
        item.recipient_key_ids,
        item.padded_size,
    ):
        raise Failure(
            "ManifestMismatch",
            f"item {item.id}: bundle.json describes its envelope wrongly"
            " (sealing path, recipients or size)",
            "The server's metadata is wrong; the item is not acknowledged. Report it.",
        )
    return header, raw


def _decrypt(
    stream: BinaryIO,
    header: tuple[envelope.Header, bytes],
    content: Content,
    item: bundle.Item,
    identities: list[PrivateKey],
) -> None:
    try:
        envelope.open_stream(stream, content.stream, identities, header=header)
    except envelope.NoMatchingKey:
        raise Failure(
            "NoMatchingKey",
            f"item {item.id} was not sealed to any secret key given",
            "Import again with the key it was sealed to (--secret-key); the others are kept.",
        ) from None
    except TooLarge:
        raise Failure(
            "TooLarge",
            f"item {item.id} is a report larger than {MAX_REPORT >> 20} MiB, which no form can"
            " give (files travel as separate attachments)",
            "The sealer is faulty or hostile; the item is not acknowledged. Report it.",
        ) from None
    except (bundle.BundleError, envelope.EnvelopeError, attachment.AttachmentError) as err:
        raise Failure(type(err).__name__, f"item {item.id}: {err}", err.hint) from None


def _finish(content: Content, item: bundle.Item) -> attachment.Metadata | None:
    try:
        return content.finish()
    except attachment.AttachmentError as err:
        raise Failure(type(err).__name__, f"item {item.id}: {err}", err.hint) from None


def _checked(
    data: bytes, header: envelope.Header, item: bundle.Item, identities: list[PrivateKey]
) -> Checked:
    try:
        if followups.is_followup(data):
            path = header.path.name.lower()
            return followups.check(data, path, item.reply_public_key, identities)
        return check(data, header.path.name.lower(), item.reply_public_key)
    except DocumentRefused as err:
        raise Failure(err.name, f"item {item.id}: {err}", err.hint) from None


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


def _store_report(
    db: Session, existing: Item | None, item: bundle.Item, checked: Checked, today: dt.date
) -> bool:
    reply_key = base64.b64decode(checked.document["reply_public_key"])
    case = db.get(Case, item.thread_id)
    new_case = case is None
    if case is None:
        case = Case(thread_id=item.thread_id, reply_public_key=reply_key, first_on=item.received_on)
        db.add(case)
    elif not hmac.compare_digest(case.reply_public_key, reply_key):
        raise Failure(
            "ReplyKeySwapped",
            f"item {item.id}: its reply key differs from the one this case already has",
            "Do not reply to this case; report the server as compromised.",
        )
    case.first_on = min(case.first_on, item.received_on)
    row = existing or Item(id=item.id)
    fill_item(row, item, today)
    row.document = json.dumps(checked.document, ensure_ascii=False)
    row.problems = json.dumps(list(checked.problems), ensure_ascii=False)
    db.add(row)
    db.flush()
    return new_case


def _store_failed(
    db: Session, existing: Item | None, item: bundle.Item, failure: Failure, today: dt.date
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


def _summarise(outcomes: list[Outcome], problems: list[tuple[str, str]]) -> int:
    for outcome in outcomes:
        if not outcome.ok:
            fail(outcome.message, outcome.hint)
    for message, hint in problems:
        fail(message, hint)
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
    return 0 if all(o.ok for o in outcomes) and not problems else 1


def note(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def fail(message: str, hint: str) -> None:
    sys.stderr.write(f"{PROG}: error: {plain(message)}\n{PROG}: hint: {hint}\n")
    sys.stderr.flush()
