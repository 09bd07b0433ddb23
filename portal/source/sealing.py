"""Sealing on the submitter's behalf, for the no-JavaScript path only, in memory.

Called only after the submitter's explicit choice. The report document is
built, serialised and sealed in memory (``envelope.seal`` writes to a
``BytesIO``); nothing touches a file until it is ciphertext. The receipt is
generated here, shown once on the confirmation page and never stored: the
server keeps the keyed digest of its lookup token and the reply public key,
exactly as for a browser-sealed report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from portal import envelope, receipt, report
from portal.envelope import Header, SealPath
from portal.keys import RecipientKey


@dataclass(frozen=True)
class Sealed:
    receipt: str  # display form, for the confirmation page only
    envelope: bytes
    header: Header
    lookup_token: bytes
    reply_public_key: bytes


def serialise(document: Mapping[str, Any]) -> bytes:
    """The document as the browser sends it: compact JSON, UTF-8, non-ASCII kept."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def seal_report(
    fields: Mapping[str, Any],
    keys: Sequence[RecipientKey],
    attachments: Sequence[Mapping[str, Any]] = (),
) -> Sealed:
    """A new receipt and the report sealed (path ``server``) to every key in ``keys``.

    ``attachments`` are the listing entries of the files sealed with it (FORMAT.md §15.1).
    """
    shown = receipt.generate()
    reply_public_key = receipt.reply_public_key(shown)
    document = report.document(fields, reply_public_key, sealed_by="server")
    if attachments:
        document["attachments"] = [dict(a) for a in attachments]
    sealed = envelope.seal(serialise(document), [k.public_key for k in keys], SealPath.SERVER)
    return Sealed(
        receipt=shown,
        envelope=sealed,
        header=envelope.parse_header(sealed),
        lookup_token=receipt.lookup_token(shown),
        reply_public_key=reply_public_key,
    )
