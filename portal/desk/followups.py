"""Follow-ups on the desk: checking them, filing them under their case, showing them.

A follow-up (FORMAT.md §15.7) is imported like a report, one item of its
thread's case, after these checks: the document is a ``reprisal-followup``
of version 1 with every member; its sealing path matches the envelope's; its
``reply_public_key`` equals the one the server exported (and, when the item
is stored, the case's own, which came from the first report); and for every
secret key the desk opened it with that has a ``thread_proofs`` entry, the
proof equals the one computed from that secret key and the reply key, with
at least one such key. Only the holder of the receipt can make that proof,
so a server cannot slip a forged follow-up (a forged consent change) into a
thread. Content outside the follow-up's fields is kept and flagged.

``portal-desk cases`` shows each case's unread follow-ups and its consent
as the latest follow-ups changed it; ``portal-desk show`` prints them and
marks them read (table ``followup_reads``, added to an older store when
first used).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from nacl.public import PrivateKey
from sqlalchemy import Date, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from portal import envelope, followup, strictjson
from portal.desk.casestore import Case, CaseBase, Item
from portal.desk.documents import (
    Checked,
    DocumentRefused,
    _check_reply_key,
    _value_problem,
    member_problems,
)

TOP_MEMBERS = ("type", "version", "sealed_by", "reply_public_key", "thread_proofs", "fields")
HINT = "The sealer is faulty or the envelope was not a follow-up; keep the bundle for review."


class FollowupRead(CaseBase):
    """A follow-up item shown by ``portal-desk show``, and the day it was."""

    __tablename__ = "followup_reads"

    item_id: Mapped[str] = mapped_column(String(32), ForeignKey("items.id"), primary_key=True)
    read_on: Mapped[dt.date] = mapped_column(Date)


def is_followup(plaintext: bytes) -> bool:
    """Whether a decrypted document says it is a follow-up (checked in full by :func:`check`)."""
    try:
        obj = strictjson.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, strictjson.StrictJSONError):
        return False
    return isinstance(obj, dict) and obj.get("type") == followup.FOLLOWUP_TYPE


def check(
    plaintext: bytes, sealed_by: str, exported_reply_key: bytes, identities: Sequence[PrivateKey]
) -> Checked:
    """Parse and check a decrypted follow-up; raises ``DocumentRefused``."""
    obj = strictjson.loads(plaintext.decode("utf-8"))
    if not isinstance(obj, dict):  # is_followup said it is one: never reached
        raise DocumentRefused("MalformedFollowup", "the follow-up is not an object", HINT)
    version = obj.get("version")
    if version != followup.FOLLOWUP_VERSION or isinstance(version, bool):
        hint = "Upgrade portal-desk to the version the server runs."
        raise DocumentRefused("UnsupportedFollowup", f"follow-up version {version!r}", hint)
    missing = [m for m in TOP_MEMBERS if m not in obj]
    if missing:
        raise DocumentRefused(
            "MalformedFollowup", f"the follow-up lacks {', '.join(missing)}", HINT
        )
    if obj["sealed_by"] != sealed_by:
        raise DocumentRefused(
            "SealedByMismatch",
            f"the follow-up says it was sealed by {obj['sealed_by']!r}"
            f" but its envelope says {sealed_by!r}",
            "The envelope or its sealer is not honest; do not trust this follow-up.",
        )
    _check_reply_key(obj["reply_public_key"], exported_reply_key)
    _check_proofs(obj["thread_proofs"], exported_reply_key, identities)
    if not isinstance(obj["fields"], dict):
        raise DocumentRefused("MalformedFollowup", "the follow-up's fields are not an object", HINT)
    return Checked(obj, member_problems(obj, TOP_MEMBERS, field_problems))


def _check_proofs(proofs: object, reply_key: bytes, identities: Sequence[PrivateKey]) -> None:
    checked = 0
    if isinstance(proofs, dict):
        for identity in identities:
            public = bytes(identity.public_key)
            given = proofs.get(envelope.key_id(public).hex())
            if given is None:
                continue
            expected = followup.expected_proof(bytes(identity), public, reply_key)
            if not _proof_matches(given, expected):
                checked = -1
                break
            checked += 1
    if checked <= 0:
        raise DocumentRefused(
            "FollowupNotBound",
            "the follow-up's thread proof does not match this thread: it was not made with"
            " the receipt of the report it claims to follow",
            "Do not act on it (it may be forged by whoever controls the server); keep the"
            " bundle and report it to the security focal point.",
        )


def _proof_matches(given: object, expected: bytes) -> bool:
    if not isinstance(given, str):
        return False
    try:
        raw = base64.b64decode(given, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == len(expected) and followup.proofs_match(raw, expected)


def field_problems(fields: dict[str, Any]) -> list[str]:
    """One line per answer the follow-up form could not have produced."""
    problems = []
    for name, value in fields.items():
        spec = followup.BY_NAME.get(name)
        if spec is None:
            problems.append(f"unknown field {name!r}")
            continue
        problem = _value_problem(spec, value)
        if problem:
            problems.append(f"{name}: {problem}")
    if not fields:
        problems.append("the follow-up holds no text and changes no consent")
    return problems


# The case store --------------------------------------------------------------------------


def document_of(item: Item) -> dict[str, Any]:
    document = json.loads(item.document or "{}")
    return document if isinstance(document, dict) else {}


def is_followup_item(item: Item) -> bool:
    return document_of(item).get("type") == followup.FOLLOWUP_TYPE


def current_fields(items: Sequence[Item]) -> dict[str, Any]:
    """The first report's fields with the consent answers as its follow-ups changed them.

    The server keeps only the day, so two follow-ups of one day that disagree
    leave the answer ``"unclear"`` rather than a guess.
    """
    reports = [i for i in items if not is_followup_item(i)]
    fields = dict(_fields(reports[0])) if reports else {}
    changes: dict[str, tuple[dt.date, object]] = {}
    for item in items:
        if not is_followup_item(item):
            continue
        for name, value in _fields(item).items():
            if name not in followup.CONSENT_NAMES:
                continue
            day, before = changes.get(name, (item.received_on, value))
            same_day_conflict = day == item.received_on and before != value
            changes[name] = (item.received_on, "unclear" if same_day_conflict else value)
    fields.update({name: value for name, (_, value) in changes.items()})
    return fields


def _fields(item: Item) -> dict[str, Any]:
    fields = document_of(item).get("fields", {})
    return fields if isinstance(fields, dict) else {}


def _ensure_table(db: Session) -> None:
    FollowupRead.__table__.create(db.connection(), checkfirst=True)  # type: ignore[attr-defined]


def unread_counts(db: Session) -> dict[str, int]:
    """Unread follow-ups per case (thread id)."""
    _ensure_table(db)
    read = set(db.scalars(select(FollowupRead.item_id)))
    counts: dict[str, int] = {}
    for item in db.scalars(select(Item).where(Item.thread_id.is_not(None))):
        if item.id not in read and item.thread_id and is_followup_item(item):
            counts[item.thread_id] = counts.get(item.thread_id, 0) + 1
    return counts


def unread_suffix(counts: dict[str, int], case: Case) -> str:
    count = counts.get(case.thread_id, 0)
    return f"  [{count} unread follow-up{'s' if count > 1 else ''}]" if count else ""


def mark_read(db: Session, case: Case) -> int:
    """Mark the case's follow-ups read (they have just been shown); return how many were new."""
    _ensure_table(db)
    read = set(db.scalars(select(FollowupRead.item_id)))
    today = dt.datetime.now(dt.UTC).date()
    new = [i.id for i in case.items if is_followup_item(i) and i.id not in read]
    db.add_all(FollowupRead(item_id=item_id, read_on=today) for item_id in new)
    db.commit()
    return len(new)


def render(item: Item) -> list[str]:
    """A follow-up as text lines for ``portal-desk show``."""
    from portal.desk.casework import _answer, _display, _plain  # casework imports this module

    document, fields = document_of(item), _fields(item)
    out = [
        f"Item {item.id}: FOLLOW-UP",
        f"  Received {item.received_on.isoformat()}, sealed by {item.sealed_by},"
        f" imported {item.imported_on.isoformat()}; thread proof checked",
    ]
    changes = [n for n in followup.CONSENT_NAMES if n in fields]
    if changes:
        out += ["", "  Consent changed to"]
        for name in changes:
            out += _answer(followup.BY_NAME[name].label, _display(name, fields[name]))
    if "account" in fields:
        out += ["", "  More information"]
        out += _answer("Text", str(fields["account"]))
    problems = json.loads(item.problems)
    if problems:
        out += ["", "  WARNING: content outside the follow-up form (kept exactly as sent):"]
        out += [f"    - {_plain(p)}" for p in problems]
        extra = {k: v for k, v in fields.items() if k not in followup.BY_NAME}
        extra.update({k: v for k, v in document.items() if k not in (*TOP_MEMBERS, "attachments")})
        for name, value in extra.items():
            out += _answer(f"Unexpected {name!r}", json.dumps(value, ensure_ascii=False))
    return out
