"""The desk's secret key files: an X25519 or Ed25519 secret key encrypted under a passphrase.

The file is UTF-8 JSON, mode 0600, written once and never overwritten::

    {"type": "reprisals-portal secret key", "version": 1, "label": "...",
     "public_key": base64(32 bytes), "fingerprint": "01234 56789 ...", "created": "YYYY-MM-DD",
     "kdf": {"algorithm": "argon2id", "salt": base64(16 bytes), "time_cost": 3,
             "memory_cost_kib": 65536, "parallelism": 4},
     "cipher": "aes-256-gcm", "nonce": base64(12 bytes), "ciphertext": base64(48 bytes)}

That is an **encryption** key (X25519, the recipients' kind). A **signing**
key (Ed25519, ``keygen --signing``) has one more member after ``version``,
``"kind": "signing"``; its ``public_key`` is the Ed25519 public key, its
fingerprint is ``portal.signing``'s, and the ciphertext holds the 32-byte
seed. ``"kind": "encryption"`` is accepted, and a file without ``kind`` is an
encryption key, so files written before signing keys existed still load (and
new encryption key files stay readable by older versions).

The AES-256-GCM key is Argon2id (version 0x13, 32-byte output) of the
passphrase's UTF-8 bytes, unnormalised. The associated data is
``AD_PREFIX + public_key`` (``SIGNING_AD_PREFIX`` for a signing key, so the
kind cannot be changed unnoticed either), so the public key shown in the file
cannot be swapped, and the decrypted secret must also produce that public key.
A file is parsed and its KDF parameters bounded *before* Argon2 runs, so a
crafted file cannot make the desk allocate gigabytes or spin for minutes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from dataclasses import dataclass
from typing import Any

from argon2.exceptions import HashingError
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl import bindings
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from portal import signing, strictjson
from portal.desk.output import AtomicOutput
from portal.envelope import KEY_SIZE, Random, fingerprint
from portal.keys import (
    KeyManifestError,
    RecipientKey,
    SigningPublicKey,
    parse_entry,
    parse_signing_entry,
)

FILE_TYPE = "reprisals-portal secret key"
FILE_VERSION = 1
CIPHER = "aes-256-gcm"
AD_PREFIX = b"reprisals-portal secret key v1\x00"
SIGNING_AD_PREFIX = b"reprisals-portal signing key v1\x00"
ENCRYPTION, SIGNING = "encryption", "signing"
MIN_PASSPHRASE = 12
MAX_FILE_BYTES = 1 << 16
SALT_SIZE, NONCE_SIZE, TAG_SIZE = 16, 12, 16
KDF_DEFAULTS = {"time_cost": 3, "memory_cost_kib": 65536, "parallelism": 4}
KDF_BOUNDS = {"time_cost": (1, 10), "memory_cost_kib": (65536, 1 << 20), "parallelism": (1, 8)}
FIELDS = {"type", "version", "label", "public_key", "fingerprint", "created", "kdf", "cipher"}
FIELDS |= {"nonce", "ciphertext"}
KDF_FIELDS = {"algorithm", "salt", *KDF_BOUNDS}
LABEL_HINT = "Choose a label of 1 to 120 printable characters, such as the team and year."
DAMAGED = "The key file is damaged or was altered: restore it from your backup copy."
NOT_ENCRYPTION = (
    "This is the desk's signing key: give it to `portal-desk return --sign-key`. Opening"
    " envelopes takes an encryption key file, made by `portal-desk keygen` without --signing."
)
NOT_SIGNING = (
    "--sign-key takes the signing key file made by `portal-desk keygen --signing` (see"
    " keys/README.md), not the encryption key that opens envelopes."
)
RETYPE_HINT = (
    "Type the passphrase again (check the keyboard layout and Caps Lock); "
    "if it is right, restore the key file from your backup."
)


class KeyFileError(Exception):
    """A key file cannot be written, read or unlocked; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str = DAMAGED) -> None:
        super().__init__(message)
        self.hint = hint


class SecretKey(PrivateKey):
    """An unlocked secret key: a PyNaCl ``PrivateKey`` that also knows its public entry."""

    def __init__(self, secret: bytes, recipient: RecipientKey) -> None:
        super().__init__(secret)
        self.recipient = recipient

    @property
    def private_key(self) -> PrivateKey:
        return self

    @property
    def label(self) -> str:
        return self.recipient.label

    @property
    def fingerprint(self) -> str:
        return self.recipient.fingerprint


@dataclass(frozen=True)
class LockedKey:
    """A parsed, bounds-checked key file whose secret is still encrypted."""

    recipient: RecipientKey
    salt: bytes
    kdf: dict[str, int]
    nonce: bytes
    ciphertext: bytes

    def unlock(self, passphrase: str) -> SecretKey:
        """Decrypt the secret key; a wrong passphrase raises :class:`KeyFileError`."""
        secret = _decrypt(self, passphrase, _ad(self.recipient.public_key))
        if bindings.crypto_scalarmult_base(secret) != self.recipient.public_key:
            raise KeyFileError("the secret key in the file does not match its public key")
        return SecretKey(secret, self.recipient)


class DeskSigningKey(SigningKey):
    """An unlocked signing key: a PyNaCl ``SigningKey`` that also knows its public entry."""

    def __init__(self, seed: bytes, entry: SigningPublicKey) -> None:
        super().__init__(seed)
        self.entry = entry


@dataclass(frozen=True)
class LockedSigningKey:
    """A parsed, bounds-checked signing key file whose seed is still encrypted."""

    entry: SigningPublicKey
    salt: bytes
    kdf: dict[str, int]
    nonce: bytes
    ciphertext: bytes

    def unlock(self, passphrase: str) -> DeskSigningKey:
        """Decrypt the seed; a wrong passphrase raises :class:`KeyFileError`."""
        seed = _decrypt(self, passphrase, SIGNING_AD_PREFIX + self.entry.public_key)
        if signing.public_key_of(seed) != self.entry.public_key:
            raise KeyFileError("the secret key in the file does not match its public key")
        return DeskSigningKey(seed, self.entry)


def _decrypt(locked: LockedKey | LockedSigningKey, passphrase: str, ad: bytes) -> bytes:
    aead = AESGCM(_derive(passphrase, locked.salt, locked.kdf))
    try:
        return aead.decrypt(locked.nonce, locked.ciphertext, ad)
    except InvalidTag:
        raise KeyFileError("wrong passphrase, or the key file was altered", RETYPE_HINT) from None


def check_passphrase(passphrase: str) -> None:
    """Refuse a passphrase for a new key that is too short (or not encodable text)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise KeyFileError(
            f"the passphrase must be at least {MIN_PASSPHRASE} characters long",
            "Choose a longer passphrase, for example several unrelated words.",
        )
    _encode(passphrase)


def check_label(label: str) -> None:
    """Refuse, before any passphrase is asked for, a label that the manifest would refuse."""
    probe = bindings.crypto_scalarmult_base(b"\x01" * KEY_SIZE)
    entry = {"public_key": _b64(probe), "fingerprint": fingerprint(probe), "created": "2000-01-01"}
    _entry({"label": label, **entry}, "the new key", LABEL_HINT)


def generate(
    label: str, passphrase: str, rng: Random = os.urandom, today: dt.date | None = None
) -> tuple[bytes, RecipientKey]:
    """Make a key pair: the encrypted key file's bytes and the public manifest entry.

    Randomness is drawn from ``rng`` in the order secret key, salt, nonce.
    """
    check_passphrase(passphrase)
    secret = rng(KEY_SIZE)
    public_key = bindings.crypto_scalarmult_base(secret)
    entry = {
        "label": label,
        "public_key": _b64(public_key),
        "fingerprint": fingerprint(public_key),
        "created": (today or dt.date.today()).isoformat(),
    }
    recipient = _entry(entry, "the new key", LABEL_HINT)
    salt, nonce = rng(SALT_SIZE), rng(NONCE_SIZE)
    aead = AESGCM(_derive(passphrase, salt, KDF_DEFAULTS))
    doc = {
        "type": FILE_TYPE,
        "version": FILE_VERSION,
        **entry,
        "kdf": {"algorithm": "argon2id", "salt": _b64(salt), **KDF_DEFAULTS},
        "cipher": CIPHER,
        "nonce": _b64(nonce),
        "ciphertext": _b64(aead.encrypt(nonce, secret, _ad(public_key))),
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode(), recipient


def generate_signing(
    label: str, passphrase: str, rng: Random = os.urandom, today: dt.date | None = None
) -> tuple[bytes, SigningPublicKey]:
    """Make a signing key pair: the encrypted key file's bytes and the ``signing_keys`` entry.

    Randomness is drawn from ``rng`` in the order seed, salt, nonce.
    """
    check_passphrase(passphrase)
    seed = rng(signing.SEED_SIZE)
    public_key = signing.public_key_of(seed)
    entry = {
        "label": label,
        "public_key": _b64(public_key),
        "fingerprint": signing.fingerprint(public_key),
        "created": (today or dt.date.today()).isoformat(),
    }
    signer = _signing_entry(entry, "the new key", LABEL_HINT)
    salt, nonce = rng(SALT_SIZE), rng(NONCE_SIZE)
    aead = AESGCM(_derive(passphrase, salt, KDF_DEFAULTS))
    doc = {
        "type": FILE_TYPE,
        "version": FILE_VERSION,
        "kind": SIGNING,
        **entry,
        "kdf": {"algorithm": "argon2id", "salt": _b64(salt), **KDF_DEFAULTS},
        "cipher": CIPHER,
        "nonce": _b64(nonce),
        "ciphertext": _b64(aead.encrypt(nonce, seed, SIGNING_AD_PREFIX + public_key)),
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode(), signer


def write_new(
    path: str | os.PathLike[str], label: str, passphrase: str, rng: Random = os.urandom
) -> RecipientKey:
    """Generate a key pair and write its key file to ``path`` (0600, atomic, never overwriting)."""
    data, recipient = generate(label, passphrase, rng)
    _write(path, data)
    return recipient


def write_new_signing(
    path: str | os.PathLike[str], label: str, passphrase: str, rng: Random = os.urandom
) -> SigningPublicKey:
    """Generate a signing key pair and write its key file to ``path``, as :func:`write_new`."""
    data, signer = generate_signing(label, passphrase, rng)
    _write(path, data)
    return signer


def _write(path: str | os.PathLike[str], data: bytes) -> None:
    try:
        with AtomicOutput(path) as fh:
            fh.write(data)
    except FileExistsError:
        hint = "Choose a new file name: an existing key file is never overwritten."
        raise KeyFileError(f"{os.fspath(path)} already exists", hint) from None
    except OSError as err:
        hint = "Check that the directory exists and that you may write to it."
        raise KeyFileError(f"cannot write {os.fspath(path)}: {err.strerror}", hint) from None


def read(path: str | os.PathLike[str]) -> LockedKey:
    """Read and validate the encryption key file at ``path`` without decrypting it."""
    return parse(_read(path, "--secret-key"), f"the secret key file {os.fspath(path)}")


def read_signing(path: str | os.PathLike[str]) -> LockedSigningKey:
    """Read and validate the signing key file at ``path`` without decrypting it."""
    return parse_signing(_read(path, "--sign-key"), f"the signing key file {os.fspath(path)}")


def _read(path: str | os.PathLike[str], option: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        hint = f"Check the file name given to {option} and its permissions."
        raise KeyFileError(f"cannot read {os.fspath(path)}: {err.strerror}", hint) from None


def load(path: str | os.PathLike[str], passphrase: str) -> SecretKey:
    """Read the key file at ``path`` and unlock it with ``passphrase``."""
    return read(path).unlock(passphrase)


def load_signing(path: str | os.PathLike[str], passphrase: str) -> DeskSigningKey:
    """Read the signing key file at ``path`` and unlock it with ``passphrase``."""
    return read_signing(path).unlock(passphrase)


def parse(data: bytes, where: str = "the secret key file") -> LockedKey:
    """Validate an encryption key file's bytes: fields, encodings and bounded KDF parameters."""
    doc, kind = _document(data, where)
    if kind != ENCRYPTION:
        raise KeyFileError(f"{where} is a signing key, not an encryption key", NOT_ENCRYPTION)
    fields, salt, kdf, nonce, ciphertext = _sealed(doc, where)
    return LockedKey(_entry(fields, where, DAMAGED), salt, kdf, nonce, ciphertext)


def parse_signing(data: bytes, where: str = "the signing key file") -> LockedSigningKey:
    """Validate a signing key file's bytes, as :func:`parse` does."""
    doc, kind = _document(data, where)
    if kind != SIGNING:
        raise KeyFileError(f"{where} is an encryption key, not a signing key", NOT_SIGNING)
    fields, salt, kdf, nonce, ciphertext = _sealed(doc, where)
    return LockedSigningKey(_signing_entry(fields, where, DAMAGED), salt, kdf, nonce, ciphertext)


def _sealed(
    doc: dict[str, Any], where: str
) -> tuple[dict[str, Any], bytes, dict[str, int], bytes, bytes]:
    """The public fields, salt, bounded KDF parameters, nonce and ciphertext of a key file."""
    expected = FIELDS | ({"kind"} if "kind" in doc else set())
    if set(doc) != expected:
        names = ", ".join(sorted(set(doc) ^ expected))
        raise KeyFileError(f"{where} has unknown or missing fields: {names}")
    if doc["cipher"] != CIPHER:
        raise KeyFileError(f"{where}: cipher {_show(doc['cipher'])} is not supported")
    kdf = doc["kdf"]
    if not isinstance(kdf, dict) or set(kdf) != KDF_FIELDS or kdf["algorithm"] != "argon2id":
        raise KeyFileError(f'{where}: "kdf" must be argon2id with exactly {sorted(KDF_FIELDS)}')
    return (
        {k: doc[k] for k in ("label", "public_key", "fingerprint", "created")},
        _unb64(kdf["salt"], SALT_SIZE, "kdf salt", where),
        {name: _bounded(kdf[name], name, where) for name in KDF_BOUNDS},
        _unb64(doc["nonce"], NONCE_SIZE, "nonce", where),
        _unb64(doc["ciphertext"], KEY_SIZE + TAG_SIZE, "ciphertext", where),
    )


def _document(data: bytes, where: str) -> tuple[dict[str, Any], str]:
    if len(data) > MAX_FILE_BYTES:
        raise KeyFileError(f"{where} is larger than 64 KiB, so it is not a secret key file")
    try:
        doc = strictjson.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise KeyFileError(f"{where} is not UTF-8 text, so it is not a secret key file") from None
    except strictjson.StrictJSONError as err:
        raise KeyFileError(f"{where}: {err}") from None
    if not isinstance(doc, dict) or doc.get("type") != FILE_TYPE:
        hint = "--secret-key takes the file written by keygen; the printed entry is public."
        raise KeyFileError(f"{where} is not a reprisals-portal secret key file", hint)
    version = doc.get("version")
    if type(version) is not int or version != FILE_VERSION:
        hint = "Use the portal-desk version that wrote this key file, or a newer one."
        raise KeyFileError(f"{where}: key file version {_show(version)} is not supported", hint)
    kind = doc.get("kind", ENCRYPTION)
    if kind not in (ENCRYPTION, SIGNING):
        hint = "Use the portal-desk version that wrote this key file, or a newer one."
        raise KeyFileError(f"{where}: key kind {_show(kind)} is not supported", hint)
    return doc, kind


def _entry(fields: dict[str, Any], where: str, hint: str) -> RecipientKey:
    try:
        return parse_entry({**fields, "status": "active"}, where)
    except KeyManifestError as err:
        raise KeyFileError(str(err), hint) from None


def _signing_entry(fields: dict[str, Any], where: str, hint: str) -> SigningPublicKey:
    try:
        return parse_signing_entry(fields, where)
    except KeyManifestError as err:
        raise KeyFileError(str(err), hint) from None


def _bounded(value: object, name: str, where: str) -> int:
    low, high = KDF_BOUNDS[name]
    if type(value) is not int or not low <= value <= high:
        raise KeyFileError(f"{where}: kdf {name} must be an integer from {low} to {high}")
    return value


def _unb64(value: object, size: int, name: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != size or _b64(raw) != value:
        raise KeyFileError(f"{where}: {name} must be {size} bytes in base64")
    return raw


def _derive(passphrase: str, salt: bytes, kdf: dict[str, int]) -> bytes:
    secret = _encode(passphrase)
    cost, memory, lanes = kdf["time_cost"], kdf["memory_cost_kib"], kdf["parallelism"]
    try:
        return hash_secret_raw(secret, salt, cost, memory, lanes, KEY_SIZE, Type.ID)
    except HashingError as err:
        raise KeyFileError(f"Argon2id failed: {err}", "Close other programs and retry.") from None


def _encode(passphrase: str) -> bytes:
    try:
        return passphrase.encode("utf-8")
    except UnicodeEncodeError:
        hint = "Check the terminal's character encoding (it should be UTF-8)."
        raise KeyFileError("the passphrase is not valid text", hint) from None


def _ad(public_key: bytes) -> bytes:
    return AD_PREFIX + public_key


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _show(value: object) -> str:
    return repr(value)[:40]
