"""The encrypted secret key file: format, round trip, and hostile files."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl import bindings
from nacl.public import PrivateKey, SealedBox
from nacl.signing import SigningKey

from portal import keyfile, signing
from portal.desk.cli import main
from portal.envelope import fingerprint
from portal.keys import parse_entry, parse_signing_entry

if TYPE_CHECKING:
    from conftest import DeskKey

PASSPHRASE = "a passphrase long enough"
FIELD_ORDER = [
    "type",
    "version",
    "label",
    "public_key",
    "fingerprint",
    "created",
    "kdf",
    "cipher",
    "nonce",
    "ciphertext",
]


def counter_rng() -> Callable[[int], bytes]:
    """Deterministic randomness: 0x01 0x02 ... (only to pin the format in a test)."""
    state = {"next": 1}

    def rng(n: int) -> bytes:
        start = state["next"]
        state["next"] += n
        return bytes((start + i) % 256 for i in range(n))

    return rng


@pytest.fixture()
def argon2_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Record every Argon2id call (time, memory, lanes) while still running the real one."""
    calls: list[tuple[int, int, int]] = []

    def spy(secret: bytes, salt: bytes, t: int, m: int, p: int, n: int, kind: Type) -> bytes:
        calls.append((t, m, p))
        return hash_secret_raw(secret, salt, t, m, p, n, kind)

    monkeypatch.setattr(keyfile, "hash_secret_raw", spy)
    return calls


def test_written_file_is_0600_and_has_exactly_the_documented_fields(
    desk_keys: tuple[DeskKey, ...],
) -> None:
    key = desk_keys[0]
    assert stat.S_IMODE(key.secret_file.stat().st_mode) == 0o600
    doc = json.loads(key.secret_file.read_text(encoding="utf-8"))
    assert list(doc) == FIELD_ORDER
    assert doc["type"] == "reprisals-portal secret key"
    assert doc["version"] == 1
    assert doc["cipher"] == "aes-256-gcm"
    assert doc["kdf"] == {
        "algorithm": "argon2id",
        "salt": doc["kdf"]["salt"],
        "time_cost": 3,
        "memory_cost_kib": 65536,
        "parallelism": 4,
    }
    sizes = {"salt": 16, "nonce": 12, "ciphertext": 48, "public_key": 32}
    found = {**doc, "salt": doc["kdf"]["salt"]}
    assert {k: len(base64.b64decode(found[k])) for k in sizes} == sizes
    assert doc["fingerprint"] == fingerprint(base64.b64decode(doc["public_key"]))
    assert doc["created"] == dt.date.today().isoformat()


def test_format_matches_the_spec_byte_for_byte(tmp_path: Path) -> None:
    """Re-derive everything from the documented recipe, independently of keyfile.py."""
    data, recipient = keyfile.generate("Spec", PASSPHRASE, counter_rng(), dt.date(2026, 1, 2))
    doc = json.loads(data)
    secret, salt, nonce = bytes(range(1, 33)), bytes(range(33, 49)), bytes(range(49, 61))
    public_key = bindings.crypto_scalarmult_base(secret)
    assert base64.b64decode(doc["public_key"]) == public_key == recipient.public_key
    assert base64.b64decode(doc["kdf"]["salt"]) == salt
    assert base64.b64decode(doc["nonce"]) == nonce
    key = hash_secret_raw(PASSPHRASE.encode(), salt, 3, 65536, 4, 32, Type.ID)
    ad = b"reprisals-portal secret key v1\x00" + public_key
    assert AESGCM(key).decrypt(nonce, base64.b64decode(doc["ciphertext"]), ad) == secret
    assert doc["created"] == "2026-01-02"
    path = tmp_path / "spec.key"
    path.write_bytes(data)
    assert bytes(keyfile.load(path, PASSPHRASE).private_key) == secret


def test_load_returns_the_private_key_and_its_public_entry(desk_keys: tuple[DeskKey, ...]) -> None:
    key = desk_keys[1]
    unlocked = keyfile.load(key.secret_file, key.passphrase)
    assert isinstance(unlocked, PrivateKey)
    assert unlocked.private_key is unlocked
    assert bytes(unlocked.public_key) == key.recipient.public_key
    assert (unlocked.label, unlocked.fingerprint) == (key.label, key.recipient.fingerprint)
    assert SealedBox(unlocked).decrypt(SealedBox(unlocked.public_key).encrypt(b"k")) == b"k"
    assert unlocked.recipient == key.recipient
    assert parse_entry(unlocked.recipient.to_json()) == key.recipient


def test_wrong_passphrase(desk_keys: tuple[DeskKey, ...]) -> None:
    with pytest.raises(keyfile.KeyFileError) as caught:
        keyfile.load(desk_keys[0].secret_file, desk_keys[1].passphrase)
    assert str(caught.value) == "wrong passphrase, or the key file was altered"
    assert "passphrase" in caught.value.hint


def test_write_new_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "existing.key"
    path.write_text("precious", encoding="utf-8")
    with pytest.raises(keyfile.KeyFileError, match="already exists"):
        keyfile.write_new(path, "Desk", PASSPHRASE)
    assert path.read_text(encoding="utf-8") == "precious"
    assert os.listdir(tmp_path) == ["existing.key"]


@pytest.mark.parametrize("passphrase", ["", "eleven char", "short"])
def test_short_passphrase_is_refused(tmp_path: Path, passphrase: str) -> None:
    with pytest.raises(keyfile.KeyFileError, match="at least 12 characters") as caught:
        keyfile.write_new(tmp_path / "k.key", "Desk", passphrase)
    assert caught.value.hint
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("label", ["", "   ", "tab\there", "x" * 121])
def test_bad_label_is_refused(tmp_path: Path, label: str) -> None:
    with pytest.raises(keyfile.KeyFileError, match="label"):
        keyfile.check_label(label)
    with pytest.raises(keyfile.KeyFileError, match="label"):
        keyfile.write_new(tmp_path / "k.key", label, PASSPHRASE)
    assert os.listdir(tmp_path) == []


def _edit(doc: dict[str, Any], dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for name in parents:
        doc = doc[name]
    if value is DELETE:
        del doc[last]
    else:
        doc[last] = value


DELETE = object()
HOSTILE_EDITS = [
    ("kdf.memory_cost_kib", 1 << 40, "memory_cost_kib"),
    ("kdf.memory_cost_kib", (1 << 20) + 1, "memory_cost_kib"),
    ("kdf.memory_cost_kib", 8, "memory_cost_kib"),
    ("kdf.memory_cost_kib", 65536.0, "memory_cost_kib"),
    ("kdf.time_cost", 0, "time_cost"),
    ("kdf.time_cost", 11, "time_cost"),
    ("kdf.time_cost", 10**100, "time_cost"),
    ("kdf.parallelism", 9, "parallelism"),
    ("kdf.parallelism", True, "parallelism"),
    ("kdf.salt", base64.b64encode(bytes(8)).decode(), "salt"),
    ("kdf.salt", "not base64!", "salt"),
    ("kdf.algorithm", "argon2i", "kdf"),
    ("kdf.extra", 1, "kdf"),
    ("kdf", "argon2id", "kdf"),
    ("extra", "field", "unknown or missing fields: extra"),
    ("nonce", DELETE, "unknown or missing fields: nonce"),
    ("type", "reprisals-portal public key", "not a reprisals-portal secret key file"),
    ("version", 2, "version 2 is not supported"),
    ("version", True, "version True is not supported"),
    ("version", "1", "version '1' is not supported"),
    ("cipher", "chacha20-poly1305", "cipher"),
    ("nonce", "AAAA", "nonce must be 12 bytes"),
    ("kdf.salt", "AAAAAAAAAAAAAAAAAAAAAB==", "salt must be 16 bytes in base64"),  # not canonical
    ("kdf.salt", "AAAAAAAAAAAAAAAAAAAAAA", "salt must be 16 bytes in base64"),  # no padding
    ("ciphertext", base64.b64encode(bytes(47)).decode(), "ciphertext must be 48 bytes"),
    ("public_key", "%%%", "public key is not"),
    ("public_key", base64.b64encode(bytes(32)).decode(), "low-order"),
    ("fingerprint", "00000 00000 00000 00000 00000 00000 00000 00000", "fingerprint"),
    ("label", "", "label"),
    ("created", "yesterday", "created"),
]


@pytest.mark.parametrize(("field", "value", "message"), HOSTILE_EDITS)
def test_hostile_fields_are_refused_before_argon2_runs(
    desk_keys: tuple[DeskKey, ...],
    tmp_path: Path,
    argon2_calls: list[tuple[int, int, int]],
    field: str,
    value: object,
    message: str,
) -> None:
    doc = json.loads(desk_keys[0].secret_file.read_text(encoding="utf-8"))
    _edit(doc, field, value)
    path = tmp_path / "hostile.key"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(keyfile.KeyFileError, match=message) as caught:
        keyfile.load(path, desk_keys[0].passphrase)
    assert caught.value.hint
    assert argon2_calls == []


HOSTILE_BYTES = [
    (b"", "not valid JSON"),
    (b'{"type": "reprisals-portal secret key", "version": 1, "label"', "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2, 3]", "not a reprisals-portal secret key file"),
    (b'{"type": "reprisals-portal secret key", "version": NaN}', "NaN is not allowed"),
    (b'{"type": "reprisals-portal secret key", "type": "x", "version": 1}', "repeats a field"),
    (b"[" * 100_000, "larger than 64 KiB"),
    (b"[" * 60_000 + b"]" * 60, "not valid JSON"),
]


@pytest.mark.parametrize(("data", "message"), HOSTILE_BYTES)
def test_hostile_bytes_are_refused(
    tmp_path: Path, argon2_calls: list[tuple[int, int, int]], data: bytes, message: str
) -> None:
    path = tmp_path / "hostile.key"
    path.write_bytes(data)
    with pytest.raises(keyfile.KeyFileError, match=message):
        keyfile.load(path, PASSPHRASE)
    assert argon2_calls == []


def test_a_swapped_public_key_fails_authentication(
    desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    """The public key is bound as associated data, so showing another key breaks the file."""
    doc = json.loads(desk_keys[0].secret_file.read_text(encoding="utf-8"))
    other = desk_keys[1].recipient
    doc["public_key"], doc["fingerprint"] = other.to_json()["public_key"], other.fingerprint
    path = tmp_path / "swapped.key"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(keyfile.KeyFileError, match="wrong passphrase, or the key file was altered"):
        keyfile.load(path, desk_keys[0].passphrase)


def test_an_altered_ciphertext_fails_authentication(
    desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    doc = json.loads(desk_keys[0].secret_file.read_text(encoding="utf-8"))
    raw = bytearray(base64.b64decode(doc["ciphertext"]))
    raw[0] ^= 1
    doc["ciphertext"] = base64.b64encode(raw).decode()
    path = tmp_path / "altered.key"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(keyfile.KeyFileError, match="wrong passphrase, or the key file was altered"):
        keyfile.load(path, desk_keys[0].passphrase)


def test_a_secret_that_does_not_match_its_public_key_is_refused(tmp_path: Path) -> None:
    """A faulty writer that sealed the wrong secret under the right associated data."""
    data, recipient = keyfile.generate("Mismatch", PASSPHRASE)
    doc = json.loads(data)
    salt, nonce = base64.b64decode(doc["kdf"]["salt"]), base64.b64decode(doc["nonce"])
    key = hash_secret_raw(PASSPHRASE.encode(), salt, 3, 65536, 4, 32, Type.ID)
    ad = b"reprisals-portal secret key v1\x00" + recipient.public_key
    doc["ciphertext"] = base64.b64encode(AESGCM(key).encrypt(nonce, bytes(32), ad)).decode()
    path = tmp_path / "mismatch.key"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(keyfile.KeyFileError, match="does not match its public key"):
        keyfile.load(path, PASSPHRASE)


@pytest.mark.parametrize("make", ["missing", "directory"])
def test_unreadable_paths(tmp_path: Path, make: str) -> None:
    path = tmp_path / "k.key"
    if make == "directory":
        path.mkdir()
    with pytest.raises(keyfile.KeyFileError, match="cannot read") as caught:
        keyfile.read(path)
    assert "--secret-key" in caught.value.hint


# --- signing keys (kind "signing") --------------------------------------------------------------

SIGNING_ORDER = [FIELD_ORDER[0], FIELD_ORDER[1], "kind", *FIELD_ORDER[2:]]


def test_an_encryption_key_file_has_no_kind_member(desk_keys: tuple[DeskKey, ...]) -> None:
    """Files written before signing keys existed, and new ones, read by older versions too."""
    doc = json.loads(desk_keys[0].secret_file.read_text(encoding="utf-8"))
    assert "kind" not in doc
    doc["kind"] = "encryption"  # accepted when written out
    assert keyfile.parse(json.dumps(doc).encode()).recipient == desk_keys[0].recipient


def test_the_signing_key_format_matches_the_spec_byte_for_byte(tmp_path: Path) -> None:
    data, entry = keyfile.generate_signing(
        "Signing", PASSPHRASE, counter_rng(), dt.date(2026, 1, 2)
    )
    doc = json.loads(data)
    assert list(doc) == SIGNING_ORDER and doc["kind"] == "signing"
    seed, salt, nonce = bytes(range(1, 33)), bytes(range(33, 49)), bytes(range(49, 61))
    public_key = bytes(SigningKey(seed).verify_key)
    assert base64.b64decode(doc["public_key"]) == public_key == entry.public_key
    assert doc["fingerprint"] == signing.fingerprint(public_key) != fingerprint(public_key)
    key = hash_secret_raw(PASSPHRASE.encode(), salt, 3, 65536, 4, 32, Type.ID)
    ad = b"reprisals-portal signing key v1\x00" + public_key
    assert AESGCM(key).decrypt(nonce, base64.b64decode(doc["ciphertext"]), ad) == seed
    path = tmp_path / "signing.key"
    path.write_bytes(data)
    unlocked = keyfile.load_signing(path, PASSPHRASE)
    assert bytes(unlocked) == seed and unlocked.entry == entry
    message = signing.reply_message("a" * 32, b"envelope")
    assert signing.verify(public_key, message, signing.sign(unlocked, message))


def test_write_new_signing_is_0600_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "s.key"
    entry = keyfile.write_new_signing(path, "Desk signing", PASSPHRASE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keyfile.read_signing(path).entry == entry
    before = path.read_bytes()
    with pytest.raises(keyfile.KeyFileError, match="already exists"):
        keyfile.write_new_signing(path, "Again", PASSPHRASE)
    assert path.read_bytes() == before


def test_kind_confusion_is_refused_before_argon2_with_a_hint(
    desk_keys: tuple[DeskKey, ...], tmp_path: Path, argon2_calls: list[tuple[int, int, int]]
) -> None:
    signing_file = tmp_path / "s.key"
    keyfile.write_new_signing(signing_file, "Desk signing", PASSPHRASE)
    argon2_calls.clear()
    with pytest.raises(keyfile.KeyFileError, match="is a signing key, not an encryption") as one:
        keyfile.load(signing_file, PASSPHRASE)
    assert "return --sign-key" in one.value.hint
    with pytest.raises(keyfile.KeyFileError, match="is an encryption key, not a signing") as two:
        keyfile.load_signing(desk_keys[0].secret_file, desk_keys[0].passphrase)
    assert "keygen --signing" in two.value.hint
    assert argon2_calls == []


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("verification", "key kind 'verification' is not supported"),
        (1, "key kind 1 is not supported"),
        (None, "key kind None is not supported"),
        ("encryption", "fingerprint does not match"),  # a signing file relabelled
    ],
)
def test_a_changed_kind_is_refused_before_argon2(
    tmp_path: Path, argon2_calls: list[tuple[int, int, int]], kind: object, message: str
) -> None:
    data, _ = keyfile.generate_signing("Signing", PASSPHRASE, counter_rng(), dt.date(2026, 1, 2))
    doc = json.loads(data)
    doc["kind"] = kind
    argon2_calls.clear()
    with pytest.raises(keyfile.KeyFileError, match=message):
        keyfile.parse(json.dumps(doc).encode())
    with pytest.raises(keyfile.KeyFileError):
        keyfile.parse_signing(json.dumps(doc).encode())
    assert argon2_calls == []


def test_a_signing_key_file_bound_to_its_kind(tmp_path: Path) -> None:
    """The associated data names the kind: the seed cannot be moved into an encryption file."""
    data, entry = keyfile.generate_signing(
        "Signing", PASSPHRASE, counter_rng(), dt.date(2026, 1, 2)
    )
    doc = json.loads(data)
    other = SigningKey(bytes(range(100, 132)))
    public = bytes(other.verify_key)
    doc["public_key"] = base64.b64encode(public).decode()
    doc["fingerprint"] = signing.fingerprint(public)
    with pytest.raises(keyfile.KeyFileError, match="wrong passphrase, or the key file was altered"):
        keyfile.parse_signing(json.dumps(doc).encode()).unlock(PASSPHRASE)
    assert entry.public_key != public


def test_keygen_signing_prints_the_entry_for_signing_keys(tmp_path: Path, capsys) -> None:
    phrase = tmp_path / "p"
    phrase.write_text(PASSPHRASE + "\n")
    path = tmp_path / "desk-signing.key"
    args = ["keygen", "--signing", "--label", "Desk signing 2026", "--secret-key", str(path),
            "--passphrase-file", str(phrase)]  # fmt: skip
    assert main(args) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert set(printed) == {"label", "public_key", "fingerprint", "created"}
    entry = parse_signing_entry(printed)
    assert keyfile.read_signing(path).entry == entry
    assert f"signing key fingerprint of 'Desk signing 2026': {entry.fingerprint}" in err
    assert "signing_keys" in err
    # The printed entry is no recipient key: `seal --to` refuses it.
    public = tmp_path / "signing.pub"
    public.write_text(out)
    assert main(["seal", "--to", str(public), "-o", str(tmp_path / "x"), str(phrase)]) == 1
    assert "status" in capsys.readouterr().err
