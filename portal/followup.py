"""The follow-up document: more information, or a change of consent, in an existing thread.

A follow-up is sealed like a report (``docs/FORMAT.md`` §15.7): by the
browser, or by the server in memory after the submitter's explicit choice.
Its fields are a free text and the report's four consent questions, each of
which may be left at "no change" (absent). It names no thread: the server
files it under the thread its lookup token finds, and the desk checks that
it belongs there with a *thread proof* per team key, which only the holder
of the receipt can make: HKDF of the X25519 shared secret between the reply
secret and the team key. The server stores the reply public key but never
the reply secret, so it cannot forge a proof (a forged consent change could
name a person in a public report). No Flask import: the desk uses it too.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl import bindings

from portal import envelope, report
from portal.attachment import Metadata, check_listing
from portal.report import N_, Field, ReportError

FOLLOWUP_TYPE = "reprisal-followup"
FOLLOWUP_VERSION = 1
PROOF_INFO = b"reprisals-portal/v1 followup thread-proof"
CONSENT_NAMES = (
    "consent_informed",
    "consent_publication",
    "consent_raise_with_state",
    "consent_reply",
)
NO_CHANGE = N_("No change")

FIELDS: tuple[Field, ...] = (
    Field("account", N_("More information"), "textarea", "account",
          max_length=report.MAX_ACCOUNT,
          hint=N_("Anything new: what happened since, corrections, who else knows."
                  " Up to 100,000 characters.")),
    *(dataclasses.replace(report.BY_NAME[name], required=False) for name in CONSENT_NAMES),
)  # fmt: skip
BY_NAME = {f.name: f for f in FIELDS}
EMPTY = N_("Write something, or change at least one consent answer.")


def from_form(form: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The follow-up's fields from submitted form data; raises ``ReportError``.

    A consent question left at "no change" (an empty value) is absent. A
    follow-up with no field at all is refused: there would be nothing to send.
    """
    fields: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for f in FIELDS:
        value, problem = report.field_value(f, list(form.get(f.name, [])))
        if problem:
            problems[f.name] = problem
        elif value is not None:
            fields[f.name] = value
    if not fields and not problems:
        problems["account"] = EMPTY
    if problems:
        raise ReportError(problems)
    return fields


def thread_proof(reply_secret: bytes, reply_public_key: bytes, team_key: bytes) -> bytes:
    """The proof for one team key, made by the submitter from the reply secret.

    ``HKDF-SHA256(X25519(reply_secret, team_key), info = PROOF_INFO ||
    reply_public_key || team_key)``; the desk computes the same from its
    secret key and the reply public key (:func:`expected_proof`).
    """
    shared = bindings.crypto_scalarmult(reply_secret, team_key)
    return _derive(shared, reply_public_key, team_key)


def expected_proof(team_secret: bytes, team_key: bytes, reply_public_key: bytes) -> bytes:
    """The proof the desk expects for ``team_key``; raises ``ValueError`` for a bad reply key."""
    envelope.check_public_key(reply_public_key)
    shared = bindings.crypto_scalarmult(team_secret, reply_public_key)
    return _derive(shared, reply_public_key, team_key)


def _derive(shared: bytes, reply_public_key: bytes, team_key: bytes) -> bytes:
    info = PROOF_INFO + reply_public_key + team_key
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def proofs_match(given: bytes, expected: bytes) -> bool:
    """Constant-time comparison of two proofs."""
    return hmac.compare_digest(given, expected)


def document(
    fields: Mapping[str, Any],
    reply_secret: bytes,
    team_keys: Sequence[bytes],
    sealed_by: str,
    attachments: Sequence[Metadata] = (),
) -> dict[str, Any]:
    """The JSON object sealed in a follow-up's envelope (``docs/FORMAT.md`` §15.7).

    ``attachments`` lists the files sent with the follow-up, as a report's
    does (§15.1); the member is left out when there are none.
    """
    reply_public_key = bytes(bindings.crypto_scalarmult_base(reply_secret))
    proofs = {
        envelope.key_id(key).hex(): base64.b64encode(
            thread_proof(reply_secret, reply_public_key, key)
        ).decode()
        for key in team_keys
    }
    doc = {
        "type": FOLLOWUP_TYPE,
        "version": FOLLOWUP_VERSION,
        "sealed_by": sealed_by,
        "reply_public_key": base64.b64encode(reply_public_key).decode(),
        "thread_proofs": proofs,
        "fields": dict(fields),
    }
    if attachments:
        listed = [meta.listing() for meta in attachments]
        check_listing(listed)  # never seal a list the desk would refuse
        doc["attachments"] = listed
    return doc
