"""The return bundle's vocabulary: its names, limits and records (docs/BUNDLES.md §8).

Shared by the writer (``portal.returnbundle``, on the desk) and the reader
(``portal.returnread``, on the server). Standard library, PyNaCl (through
``portal.signing``) and ``portal.bundle`` only.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass

from portal import signing
from portal.bundle import BundleError

RETURN_TYPE = "reprisals-portal return"
RETURN_VERSION = 1
RETURN_NAME = "return.json"
MAX_RETURN = 32 << 20  # a million acknowledgements, with room to spare
MAX_ACKNOWLEDGEMENTS = 1_000_000
MAX_REPLY = 1 << 20  # a reply is at most 20,000 characters: its envelope is far smaller
MAX_REPLIES = 10_000
REPLY_DIR = "replies"
TOP_FIELDS = {"type", "version", "made_on", "acknowledgements", "replies"}
ACK_FIELDS = {"id", "sha256"}
REPLY_FIELDS = {"id", "thread_id", "sha256", "size", "signature"}
SIGNATURE_NAME = "return.sig"
SIGNATURE_TYPE = "reprisals-portal return signature"
SIGNATURE_FIELDS = {"type", "version", "key_id", "signature"}
MAX_SIGNATURE_MEMBER = 512  # the document is about 200 bytes


class BadSignature(BundleError):
    """The bundle is unsigned, signed with an unknown key, or its signature does not verify."""

    hint = (
        "Only a return bundle signed on the desk with the team's signing key is accepted: write"
        " it again there with `portal-desk return --sign-key`, and check that the key manifest's"
        " signing_keys list that key. Do not trust this copy."
    )


@dataclass(frozen=True, order=True)
class Acknowledgement:
    """The desk received item ``id`` as an envelope with this SHA-256, and opened it."""

    id: str
    sha256: bytes


@dataclass(frozen=True, order=True)
class Reply:
    """A reply sealed on the desk for thread ``thread_id``: the envelope's bytes as written.

    ``signature`` is the desk's Ed25519 signature of ``signing.reply_message``:
    filled in by :func:`write_return` and by :func:`parse` (after checking it).
    """

    id: str
    thread_id: str
    envelope: bytes
    signature: bytes = b""

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.envelope).digest()


@dataclass(frozen=True)
class ReturnBundle:
    made_on: dt.date
    acknowledgements: tuple[Acknowledgement, ...]
    replies: tuple[Reply, ...] = ()
    signer: bytes = b""  # the public key whose signature verified (empty from parse_manifest)


def reply_member(reply_id: str) -> str:
    """The archive name of a reply's envelope; always built from a checked id."""
    return f"{REPLY_DIR}/{reply_id}.env"


def reply_message(reply: Reply) -> bytes:
    """What the desk signs for ``reply`` (BUNDLES.md §8.6)."""
    return signing.reply_message(reply.thread_id, reply.envelope)


def b64(raw: bytes) -> str:
    """``raw`` in canonical standard base64."""
    return base64.b64encode(raw).decode("ascii")
