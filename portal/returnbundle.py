"""The return bundle: the desk's acknowledgements, carried back to the server.

``docs/BUNDLES.md`` §8 specifies the bytes: a ustar archive with the same
fixed header fields as the export bundle (§2), holding ``return.json``, then
``return.sig`` (the desk's Ed25519 signature of ``return.json``, §8.6), then
one member ``replies/<id>.env`` per sealed reply the manifest lists (in its
order), then the end-of-archive blocks. Each reply entry also carries its own
signature, which the server stores and the submitter's reader checks. It
holds ids, digests, signatures and sealed replies, never plaintext.

This module writes it (on the desk, without any web module); the server
reads and checks it with ``portal.returnread``; both use the records and
limits of ``portal.returnformat``. Every public name of the three is
importable from here. Standard library, PyNaCl (through ``portal.signing``)
and ``portal.bundle`` only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import BinaryIO

from nacl.signing import SigningKey

from portal import signing
from portal.bundle import BLOCK, tar_header
from portal.returnformat import (
    ACK_FIELDS,
    MAX_ACKNOWLEDGEMENTS,
    MAX_REPLIES,
    MAX_REPLY,
    MAX_RETURN,
    MAX_SIGNATURE_MEMBER,
    REPLY_DIR,
    REPLY_FIELDS,
    RETURN_NAME,
    RETURN_TYPE,
    RETURN_VERSION,
    SIGNATURE_FIELDS,
    SIGNATURE_NAME,
    SIGNATURE_TYPE,
    TOP_FIELDS,
    Acknowledgement,
    BadSignature,
    Reply,
    ReturnBundle,
    b64,
    reply_member,
    reply_message,
)
from portal.returnread import parse, parse_manifest

__all__ = [
    "ACK_FIELDS",
    "MAX_ACKNOWLEDGEMENTS",
    "MAX_REPLIES",
    "MAX_REPLY",
    "MAX_RETURN",
    "MAX_SIGNATURE_MEMBER",
    "REPLY_DIR",
    "REPLY_FIELDS",
    "RETURN_NAME",
    "RETURN_TYPE",
    "RETURN_VERSION",
    "SIGNATURE_FIELDS",
    "SIGNATURE_NAME",
    "SIGNATURE_TYPE",
    "TOP_FIELDS",
    "Acknowledgement",
    "BadSignature",
    "Reply",
    "ReturnBundle",
    "manifest_bytes",
    "parse",
    "parse_manifest",
    "reply_member",
    "signature_bytes",
    "write_return",
]


def manifest_bytes(
    made_on: dt.date, acks: Sequence[Acknowledgement], replies: Sequence[Reply] = ()
) -> bytes:
    """``return.json``, serialised as ``bundle.json`` is (BUNDLES.md §3.1)."""
    document = {
        "type": RETURN_TYPE,
        "version": RETURN_VERSION,
        "made_on": made_on.isoformat(),
        "acknowledgements": [{"id": a.id, "sha256": a.sha256.hex()} for a in sorted(acks)],
        "replies": [
            {
                "id": r.id,
                "thread_id": r.thread_id,
                "sha256": r.sha256.hex(),
                "size": len(r.envelope),
                "signature": b64(r.signature),
            }
            for r in sorted(replies)
        ],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


def signature_bytes(key_id: bytes, signature: bytes) -> bytes:
    """``return.sig``, serialised as ``return.json`` is."""
    document = {
        "type": SIGNATURE_TYPE,
        "version": RETURN_VERSION,
        "key_id": key_id.hex(),
        "signature": b64(signature),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


def write_return(
    acks: Sequence[Acknowledgement],
    out: BinaryIO,
    made_on: dt.date,
    replies: Sequence[Reply] = (),
    *,
    signer: SigningKey,
) -> None:
    """Write the return bundle acknowledging ``acks`` and carrying ``replies`` to ``out``.

    Each reply and then ``return.json`` are signed with ``signer``.
    """
    signed = sorted(
        dataclasses.replace(r, signature=signing.sign(signer, reply_message(r))) for r in replies
    )
    manifest = manifest_bytes(made_on, acks, signed)
    public_key = bytes(signer.verify_key)
    seal = signing.sign(signer, signing.return_message(manifest))
    data = _archive(manifest, signature_bytes(signing.key_id(public_key), seal), signed)
    parse(data, [public_key])  # never write what a reader would refuse
    out.write(data)


def _archive(manifest: bytes, sig: bytes, replies: Sequence[Reply] = ()) -> bytes:
    parts = [tar_header(RETURN_NAME, len(manifest)), manifest, bytes(-len(manifest) % BLOCK)]
    parts += [tar_header(SIGNATURE_NAME, len(sig)), sig, bytes(-len(sig) % BLOCK)]
    for reply in replies:
        size = len(reply.envelope)
        parts += [tar_header(reply_member(reply.id), size), reply.envelope, bytes(-size % BLOCK)]
    parts.append(bytes(2 * BLOCK))
    return b"".join(parts)
