"""Checking a decrypted report document against ``portal/report.py`` (FORMAT.md §15).

The server cannot read what browsers seal, so the desk checks every
document. Two outcomes: a document that is not a report at all, or whose
sealing path or reply key contradicts what authenticated it, is *refused*
(:class:`DocumentRefused`); a report with content outside the form (an
unknown field, a value not among the choices, a text over its limit) is
kept whole and *flagged* with one line per problem, so that nothing is
silently dropped and a person looks at it. A malformed ``attachments`` list
(§15.1) is flagged the same way, and not used to match files.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from portal import strictjson
from portal.attachment import AttachmentError, check_listing
from portal.report import BY_NAME, FIELDS, REPORT_TYPE, REPORT_VERSION, Field

TOP_MEMBERS = ("type", "version", "sealed_by", "reply_public_key", "fields")


class DocumentRefused(Exception):
    """The document cannot be used; ``name`` is the short error name stored with the item."""

    def __init__(self, name: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.name = name
        self.hint = hint


@dataclass(frozen=True)
class Checked:
    """A parsed report document and the problems found in it (empty when it is clean)."""

    document: dict[str, Any]
    problems: tuple[str, ...]


def check(plaintext: bytes, sealed_by: str, exported_reply_key: bytes) -> Checked:
    """Parse and check a decrypted report (``sealed_by`` comes from the envelope's header).

    Refuses a document whose ``reply_public_key`` differs from the reply key
    the server exported: a server that swapped it could read every reply.
    """
    hint = "The sealer is faulty or the envelope was not a report; keep the bundle for review."
    try:
        obj = strictjson.loads(plaintext.decode("utf-8"))
    except UnicodeDecodeError:
        raise DocumentRefused("NotAReport", "the content is not UTF-8 text", hint) from None
    except strictjson.StrictJSONError as err:
        raise DocumentRefused("NotAReport", f"the content is {err}", hint) from None
    if not isinstance(obj, dict) or obj.get("type") != REPORT_TYPE:
        raise DocumentRefused("NotAReport", "the content is not a report document", hint)
    version = obj.get("version")
    if version != REPORT_VERSION or isinstance(version, bool):
        hint = "Upgrade portal-desk to the version the server runs."
        raise DocumentRefused("UnsupportedReport", f"report version {version!r} is unknown", hint)
    missing = [m for m in TOP_MEMBERS if m not in obj]
    if missing:
        raise DocumentRefused("MalformedReport", f"the report lacks {', '.join(missing)}", hint)
    if obj["sealed_by"] != sealed_by:
        raise DocumentRefused(
            "SealedByMismatch",
            f"the report says it was sealed by {obj['sealed_by']!r}"
            f" but its envelope says {sealed_by!r}",
            "The envelope or its sealer is not honest; do not trust this report.",
        )
    _check_reply_key(obj["reply_public_key"], exported_reply_key)
    if not isinstance(obj["fields"], dict):
        raise DocumentRefused("MalformedReport", "the report's fields are not an object", hint)
    return Checked(obj, member_problems(obj, TOP_MEMBERS, field_problems))


def member_problems(
    obj: dict[str, Any],
    members: Sequence[str],
    check_fields: Callable[[dict[str, Any]], list[str]],
) -> tuple[str, ...]:
    """The problems a person should see in a document that is kept: members besides
    ``members`` and ``attachments``, an unusable ``attachments`` list (§15.1), and what
    ``check_fields`` finds in its fields."""
    problems = [
        f"unexpected member {name!r} outside the fields"
        for name in obj
        if name not in (*members, "attachments")
    ]
    if "attachments" in obj:
        try:
            check_listing(obj["attachments"])
        except AttachmentError as err:
            problems.append(f"its list of attachments is not usable: {err}")
    return (*problems, *check_fields(obj["fields"]))


def _check_reply_key(value: object, exported: bytes) -> None:
    inside = b""
    if isinstance(value, str):
        try:
            inside = base64.b64decode(value, validate=True)
        except ValueError:
            inside = b""
    if len(inside) != 32 or not hmac.compare_digest(inside, exported):
        raise DocumentRefused(
            "ReplyKeySwapped",
            "THE SERVER'S REPLY KEY DOES NOT MATCH THE ONE SEALED IN THE REPORT: the server"
            " (or whoever controls it) may have swapped it to read replies",
            "Do not reply to this case. Report the server as compromised to the security focal"
            " point; the report is kept in the bundle, not acknowledged.",
        )


def field_problems(fields: dict[str, Any]) -> list[str]:
    """One line per answer that the form could not have produced (§15.2)."""
    problems = []
    for name, value in fields.items():
        spec = BY_NAME.get(name)
        if spec is None:
            problems.append(f"unknown field {name!r}")
            continue
        problem = _value_problem(spec, value)
        if problem:
            problems.append(f"{name}: {problem}")
    for spec in FIELDS:
        if spec.required and spec.name not in fields:
            problems.append(f"{spec.name}: required but missing")
    return problems


def _value_problem(spec: Field, value: object) -> str | None:
    allowed = [v for v, _ in spec.choices]
    if spec.kind == "multi":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            return "expected a non-empty list of choices"
        unknown = [v for v in value if v not in allowed]
        if unknown:
            return f"not among the choices: {', '.join(map(repr, unknown))}"
        if value != [v for v in allowed if v in value]:
            return "choices repeated or not in the form's order"
        return None
    if spec.kind == "flag":
        return None if value is True else "expected true"
    if not isinstance(value, str):
        return "expected a string"
    if spec.kind == "choice":
        return None if value in allowed else f"{value!r} is not among the choices"
    if spec.kind == "year":
        ok = len(value) == 4 and value.isascii() and value.isdigit()
        return None if ok else "expected a four-digit year"
    if not value or value != value.strip():
        return "empty, or with leading or trailing white space"
    if len(value) > spec.max_length:
        return f"longer than {spec.max_length} characters"
    return None
