"""The recipients' public key manifest: load it, validate it, fail closed.

The manifest (``keys/manifest.json``) lists the OHCHR reprisals team's X25519
public keys, and optionally (``signing_keys``) the Ed25519 public keys the
desk signs return bundles and replies with. It is public; it never holds a
secret key. Anything wrong with it (a bad key, a fingerprint that does not
match, no active key) stops the portal from accepting submissions rather
than sealing to the wrong keys, and from accepting return bundles.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portal import envelope, signing, strictjson
from portal.envelope import MAX_RECIPIENTS, fingerprint, key_id

MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 20
MAX_LABEL = 120
STATUSES = ("active", "retired")
ENTRY_FIELDS = {"label", "public_key", "fingerprint", "created", "status", "demo"}
SIGNING_FIELDS = {"label", "public_key", "fingerprint", "created", "demo"}
TOP_FIELDS = {"version", "recipients", "signing_keys"}
# The key in use and the one replacing it during a rotation, with room to spare.
MAX_SIGNING_KEYS = 4
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")


class KeyManifestError(Exception):
    """A manifest or key entry is unusable; ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str = "See keys/README.md.") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class RecipientKey:
    """One recipient's public key as listed in the manifest."""

    label: str
    public_key: bytes
    created: dt.date
    status: str = "active"
    demo: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def key_id(self) -> bytes:
        return key_id(self.public_key)

    def to_json(self) -> dict[str, Any]:
        """The manifest entry for this key, as ``portal-desk keygen`` prints it."""
        entry: dict[str, Any] = {
            "label": self.label,
            "public_key": base64.b64encode(self.public_key).decode(),
            "fingerprint": self.fingerprint,
            "created": self.created.isoformat(),
            "status": self.status,
        }
        if self.demo:
            entry["demo"] = True
        return entry


@dataclass(frozen=True)
class SigningPublicKey:
    """One of the desk's Ed25519 verification keys, as listed under ``signing_keys``."""

    label: str
    public_key: bytes
    created: dt.date
    demo: bool = False

    @property
    def fingerprint(self) -> str:
        return signing.fingerprint(self.public_key)

    @property
    def key_id(self) -> bytes:
        return signing.key_id(self.public_key)

    def to_json(self) -> dict[str, Any]:
        """The ``signing_keys`` entry, as ``portal-desk keygen --signing`` prints it."""
        entry: dict[str, Any] = {
            "label": self.label,
            "public_key": base64.b64encode(self.public_key).decode(),
            "fingerprint": self.fingerprint,
            "created": self.created.isoformat(),
        }
        if self.demo:
            entry["demo"] = True
        return entry


@dataclass(frozen=True)
class Manifest:
    recipients: tuple[RecipientKey, ...]
    signing_keys: tuple[SigningPublicKey, ...] = ()

    @property
    def active(self) -> tuple[RecipientKey, ...]:
        return tuple(k for k in self.recipients if k.status == "active")

    @property
    def is_demo(self) -> bool:
        return any(k.demo for k in self.active)

    def require_active(self) -> tuple[RecipientKey, ...]:
        """The keys to seal to; raises rather than return none."""
        if not self.active:
            raise KeyManifestError(
                "the key manifest has no active recipient key, so nothing can be sealed",
                "Add the team's public key with `portal-desk keygen` (see keys/README.md).",
            )
        return self.active

    def require_signing(self) -> tuple[SigningPublicKey, ...]:
        """The keys a return bundle may be signed with; raises rather than return none."""
        if not self.signing_keys:
            raise KeyManifestError(
                "the key manifest lists no signing key, so no return bundle can be checked",
                "Make the desk's signing key with `portal-desk keygen --signing` and add the"
                ' printed entry to "signing_keys" in the manifest (see keys/README.md).',
            )
        return self.signing_keys

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "version": MANIFEST_VERSION,
            "recipients": [k.to_json() for k in self.recipients],
        }
        if self.signing_keys:
            doc["signing_keys"] = [k.to_json() for k in self.signing_keys]
        return doc


def check_public_key(raw: bytes) -> None:
    """Refuse keys that are the wrong length, not canonical, or of low order."""
    try:
        envelope.check_public_key(raw)
    except envelope.InvalidRecipientKey as err:
        raise KeyManifestError(str(err)) from None


def parse_entry(obj: object, where: str = "the key entry") -> RecipientKey:
    """Validate one manifest entry (a JSON object) and return it."""
    if not isinstance(obj, Mapping):
        raise KeyManifestError(f"{where} is not a JSON object")
    unknown = set(obj) - ENTRY_FIELDS
    missing = ENTRY_FIELDS - {"demo"} - set(obj)
    if unknown or missing:
        names = ", ".join(sorted(unknown | missing))
        raise KeyManifestError(f"{where} has unknown or missing fields: {names}")
    key = RecipientKey(
        label=_label(obj["label"], where),
        public_key=_public_key(obj["public_key"], where),
        created=_date(obj["created"], where),
        status=_status(obj["status"], where),
        demo=_flag(obj.get("demo", False), where),
    )
    if obj["fingerprint"] != key.fingerprint:
        raise KeyManifestError(
            f"{where} ({key.label}): the fingerprint does not match the public key",
            "Copy the entry again from the output of `portal-desk keygen`; never edit it by hand.",
        )
    return key


def parse_signing_entry(obj: object, where: str = "the signing key entry") -> SigningPublicKey:
    """Validate one ``signing_keys`` entry (a JSON object) and return it."""
    if not isinstance(obj, Mapping):
        raise KeyManifestError(f"{where} is not a JSON object")
    unknown = set(obj) - SIGNING_FIELDS
    missing = SIGNING_FIELDS - {"demo"} - set(obj)
    if unknown or missing:
        names = ", ".join(sorted(unknown | missing))
        raise KeyManifestError(f"{where} has unknown or missing fields: {names}")
    key = SigningPublicKey(
        label=_label(obj["label"], where),
        public_key=_signing_key(obj["public_key"], where),
        created=_date(obj["created"], where),
        demo=_flag(obj.get("demo", False), where),
    )
    if obj["fingerprint"] != key.fingerprint:
        raise KeyManifestError(
            f"{where} ({key.label}): the fingerprint does not match the public key",
            "Copy the entry again from the output of `portal-desk keygen --signing`;"
            " never edit it by hand.",
        )
    return key


def parse_manifest(obj: object) -> Manifest:
    """Validate a whole manifest object."""
    if not isinstance(obj, Mapping) or not {"version", "recipients"} <= set(obj) <= TOP_FIELDS:
        raise KeyManifestError(
            'a manifest is a JSON object with "version" and "recipients", and optionally'
            ' "signing_keys"'
        )
    if type(obj["version"]) is not int or obj["version"] != MANIFEST_VERSION:
        raise KeyManifestError(f"manifest version {obj['version']!r} is not supported (1 is)")
    entries = obj["recipients"]
    if not isinstance(entries, list):
        raise KeyManifestError('"recipients" must be a list')
    keys = tuple(parse_entry(e, f"recipient #{i + 1}") for i, e in enumerate(entries))
    for attr in ("label", "public_key"):
        values = [getattr(k, attr) for k in keys]
        if len(set(values)) != len(values):
            raise KeyManifestError(f"two recipients have the same {attr.replace('_', ' ')}")
    manifest = Manifest(keys, _signing_keys(obj.get("signing_keys", []), keys))
    _check_active_set(manifest.active, manifest.signing_keys)
    return manifest


def _signing_keys(
    entries: object, recipients: tuple[RecipientKey, ...]
) -> tuple[SigningPublicKey, ...]:
    if not isinstance(entries, list):
        raise KeyManifestError('"signing_keys" must be a list')
    if len(entries) > MAX_SIGNING_KEYS:
        raise KeyManifestError(
            f"{len(entries)} signing keys; a manifest lists at most {MAX_SIGNING_KEYS}",
            "Remove the signing keys that are no longer used (see keys/README.md).",
        )
    keys = tuple(parse_signing_entry(e, f"signing key #{i + 1}") for i, e in enumerate(entries))
    for attr in ("label", "public_key"):
        values = [getattr(k, attr) for k in keys]
        if len(set(values)) != len(values):
            raise KeyManifestError(f"two signing keys have the same {attr.replace('_', ' ')}")
    if {k.public_key for k in keys} & {k.public_key for k in recipients}:
        raise KeyManifestError(
            "a signing key has the same bytes as a recipient key",
            "A signing key is made by `portal-desk keygen --signing`; never copy a recipient"
            " key into signing_keys.",
        )
    return keys


def _check_active_set(
    active: tuple[RecipientKey, ...], signers: tuple[SigningPublicKey, ...] = ()
) -> None:
    if len(active) > MAX_RECIPIENTS:
        raise KeyManifestError(f"{len(active)} active keys; an envelope holds {MAX_RECIPIENTS}")
    if len({k.demo for k in active}) > 1:
        # A demo secret key sits unprotected beside the server: sealing real
        # reports to it as well would hand them to anyone who takes the server.
        raise KeyManifestError(
            "the manifest mixes demo keys and real keys among its active keys",
            "Remove the demo key (or mark it retired) before adding real keys.",
        )
    if len({k.demo for k in active} | {k.demo for k in signers}) > 1:
        # A demo signing key sits unprotected too: whoever holds the server could
        # sign replies and acknowledgements that would pass for the real desk's.
        raise KeyManifestError(
            "the manifest mixes demo keys and real keys among its active and signing keys",
            "Remove the demo signing key before adding real keys, or the other way round.",
        )


def parse_recipients(text: str) -> tuple[RecipientKey, ...]:
    """Read either one printed entry or a whole manifest (what ``--to`` accepts)."""
    obj = _json(text)
    if isinstance(obj, Mapping) and "recipients" in obj:
        return parse_manifest(obj).require_active()
    key = parse_entry(obj)
    if key.status != "active":
        raise KeyManifestError(f"the key {key.label!r} is retired and must not be sealed to")
    return (key,)


def load_manifest(path: Path) -> Manifest:
    """Load and validate the manifest at ``path``; raises :class:`KeyManifestError`."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as err:
        raise KeyManifestError(
            f"cannot read the key manifest {path}: {err.strerror}",
            "Set PORTAL_KEYS (formerly PORTAL_KEYS_MANIFEST) to the manifest or its directory"
            " (see keys/README.md).",
        ) from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise KeyManifestError(f"the key manifest {path} is larger than 1 MiB")
    try:
        return parse_manifest(_json(data.decode("utf-8")))
    except UnicodeDecodeError:
        raise KeyManifestError(f"the key manifest {path} is not UTF-8 text") from None


def _json(text: str) -> object:
    try:
        return strictjson.loads(text)
    except strictjson.StrictJSONError as err:
        raise KeyManifestError(str(err)) from None


def _label(value: object, where: str) -> str:
    ok = isinstance(value, str) and value.strip() == value and 0 < len(value) <= MAX_LABEL
    if not ok or any(not c.isprintable() for c in str(value)):
        raise KeyManifestError(
            f"{where}: the label must be 1 to {MAX_LABEL} printable characters,"
            " with no space at either end"
        )
    return str(value)


def _public_key(value: object, where: str) -> bytes:
    try:
        raw = base64.b64decode(str(value), validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):  # ValueError: a non-ASCII string
        raw = b""
    if not raw or base64.b64encode(raw).decode() != value:
        raise KeyManifestError(f"{where}: the public key is not canonical base64")
    try:
        check_public_key(raw)
    except KeyManifestError as err:
        raise KeyManifestError(f"{where}: {err}") from None
    return raw


def _signing_key(value: object, where: str) -> bytes:
    try:
        raw = base64.b64decode(str(value), validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):  # ValueError: a non-ASCII string
        raw = b""
    if not raw or base64.b64encode(raw).decode() != value:
        raise KeyManifestError(f"{where}: the public key is not canonical base64")
    try:
        signing.check_public_key(raw)
    except signing.InvalidSigningKey as err:
        raise KeyManifestError(f"{where}: {err}") from None
    return raw


def _date(value: object, where: str) -> dt.date:
    try:
        if isinstance(value, str) and DATE_PATTERN.fullmatch(value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise KeyManifestError(f"{where}: created must be a date like 2026-11-23")


def _status(value: object, where: str) -> str:
    if value not in STATUSES:
        raise KeyManifestError(f"{where}: status must be one of {', '.join(STATUSES)}")
    return str(value)


def _flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise KeyManifestError(f"{where}: demo must be true or false")
    return value
