"""portal.keys: the recipient key manifest is validated, and anything wrong fails closed.

Every refusal must be a KeyManifestError whose message (and hint) a person can act on;
no KeyError, TypeError or other raw traceback type may escape, whatever shape the JSON has.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import bindings
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from portal import demo, envelope, keyfile, keys, signing
from portal.keys import (
    KeyManifestError,
    Manifest,
    RecipientKey,
    SigningPublicKey,
    check_public_key,
    load_manifest,
    parse_entry,
    parse_manifest,
    parse_recipients,
)

REPO = Path(__file__).resolve().parent.parent
P = 2**255 - 19
TODAY = dt.date(2026, 11, 23)


def new_key(label: str, *, status: str = "active", demo: bool = False) -> RecipientKey:
    public = bytes(PrivateKey.generate().public_key)
    return RecipientKey(label, public, TODAY, status, demo)


def entry(label: str = "OHCHR reprisals team — key 2026-A", **kwargs: Any) -> dict[str, Any]:
    return new_key(label, **kwargs).to_json()


def manifest(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "recipients": list(entries)}


def refused(action: Callable[[], object], *words: str) -> KeyManifestError:
    """Run ``action``; it must raise KeyManifestError (only) with a usable message and hint."""
    with pytest.raises(KeyManifestError) as caught:
        action()
    err = caught.value
    assert str(err).strip(), "the message must not be empty"
    assert err.hint.strip(), "the hint must not be empty"
    for word in words:
        assert word.lower() in str(err).lower(), f"{word!r} not in {str(err)!r}"
    return err


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# --- valid manifests ----------------------------------------------------------------------------


def test_a_valid_manifest() -> None:
    first, second = entry("Key A"), entry("Clé B — équipe", demo=False)
    retired = entry("Old key", status="retired")
    parsed = parse_manifest(manifest(first, second, retired))
    assert [k.label for k in parsed.recipients] == ["Key A", "Clé B — équipe", "Old key"]
    assert [k.label for k in parsed.active] == ["Key A", "Clé B — équipe"]
    assert parsed.require_active() == parsed.active
    assert not parsed.is_demo
    for key, raw in zip(parsed.recipients, (first, second, retired), strict=True):
        assert key.public_key == base64.b64decode(raw["public_key"])
        assert key.fingerprint == raw["fingerprint"] == envelope.fingerprint(key.public_key)
        assert key.key_id == envelope.key_id(key.public_key)
        assert key.created == TODAY
        assert key.to_json() == raw
    assert parsed.to_json() == manifest(first, second, retired)


def test_the_example_entry_of_the_format_document() -> None:
    # docs/FORMAT.md §13.1: the public key of the secret key 00 01 .. 1f.
    example = {
        "label": "Example key (secret key is 00 01 .. 1f, do not use)",
        "public_key": "j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8=",
        "fingerprint": "58381 08967 04804 22191 11517 46479 75118 36983",
        "created": "2026-11-23",
        "status": "active",
        "demo": True,
    }
    assert b64(bytes(PrivateKey(bytes(range(32))).public_key)) == example["public_key"]
    key = parse_entry(example)
    assert key.demo
    assert key.to_json() == example
    assert parse_manifest(manifest(example)).is_demo


def test_demo_entries_and_the_optional_demo_field() -> None:
    demo = entry("DEMO key", demo=True)
    assert demo["demo"] is True
    assert "demo" not in entry("real")
    explicit_false = entry("real, explicit") | {"demo": False}
    assert parse_entry(explicit_false).demo is False
    assert parse_manifest(manifest(demo)).is_demo


def test_sixteen_active_keys_are_allowed_and_retired_ones_do_not_count() -> None:
    many = [entry(f"key {i}") for i in range(16)]
    assert len(parse_manifest(manifest(*many)).active) == 16
    retired = entry("key 16", status="retired")
    assert len(parse_manifest(manifest(*many, retired)).recipients) == 17
    refused(lambda: parse_manifest(manifest(*many, entry("key 17"))), "17 active keys")


def test_the_repository_manifest_loads_and_refuses_to_seal() -> None:
    parsed = load_manifest(REPO / "keys" / "manifest.json")
    assert isinstance(parsed, Manifest)
    if not parsed.active:  # the shipped manifest has no key yet: it must fail closed
        err = refused(parsed.require_active, "no active recipient key")
        assert "keygen" in err.hint


def test_no_active_key_raises_with_a_hint() -> None:
    for parsed in (
        parse_manifest(manifest()),
        parse_manifest(manifest(entry("old", status="retired"))),
    ):
        assert parsed.active == ()
        err = refused(parsed.require_active, "no active")
        assert "keygen" in err.hint


# --- public keys --------------------------------------------------------------------------------

LOW_ORDER_HEX = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]
# The same points with bit 255 set (X25519 ignores that bit, so they are the same points).
HIGH_BIT_HEX = [h[:-2] + f"{int(h[-2:], 16) | 0x80:02x}" for h in LOW_ORDER_HEX]


@pytest.mark.parametrize("hexkey", LOW_ORDER_HEX + HIGH_BIT_HEX)
def test_low_order_and_non_canonical_keys_are_refused(hexkey: str) -> None:
    raw = bytes.fromhex(hexkey)
    refused(lambda: check_public_key(raw))
    bad = entry() | {"public_key": b64(raw), "fingerprint": envelope.fingerprint(raw)}
    err = refused(lambda: parse_entry(bad, "recipient #1"), "recipient #1")
    assert "low-order" in str(err) or "canonical" in str(err)


def test_low_order_points_below_p_say_low_order() -> None:
    for hexkey in LOW_ORDER_HEX[:5]:
        refused(lambda h=hexkey: check_public_key(bytes.fromhex(h)), "low-order")
    for hexkey in LOW_ORDER_HEX[5:] + HIGH_BIT_HEX:
        refused(lambda h=hexkey: check_public_key(bytes.fromhex(h)), "canonical")


@pytest.mark.parametrize("size", [0, 1, 16, 31, 33, 64])
def test_keys_of_the_wrong_length_are_refused(size: int) -> None:
    raw = os.urandom(size)
    refused(lambda: check_public_key(raw), "32 bytes")
    bad = entry() | {"public_key": b64(raw)}
    refused(lambda: parse_entry(bad))


def test_real_keys_pass_the_check() -> None:
    for _ in range(20):
        check_public_key(bytes(PrivateKey.generate().public_key))
    check_public_key((P - 2).to_bytes(32, "little"))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-1],  # padding missing
        lambda s: s + "=",  # too much padding
        lambda s: " " + s,  # whitespace
        lambda s: s[:20] + "\n" + s[20:],
        lambda s: s.replace("=", "") + "!",  # not base64 at all
        lambda s: "not base64",
        lambda s: "",
        lambda s: s.encode().hex(),  # hex instead of base64
    ],
)
def test_bad_base64_is_refused(mangle: Callable[[str], str]) -> None:
    good = entry()
    bad = good | {"public_key": mangle(good["public_key"])}
    refused(lambda: parse_entry(bad), "public key")


def test_url_safe_and_non_canonical_base64_are_refused() -> None:
    while True:  # a key whose base64 has a character that differs in the URL-safe alphabet
        good = entry()
        if "+" in good["public_key"] or "/" in good["public_key"]:
            break
    url_safe = good["public_key"].replace("+", "-").replace("/", "_")
    refused(lambda: parse_entry(good | {"public_key": url_safe}), "base64")
    # The 43rd character carries 4 bits of the key and 2 unused bits: set the unused ones.
    text = good["public_key"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sloppy = text[:42] + alphabet[alphabet.index(text[42]) | 0b01] + "="
    if sloppy != text:
        assert base64.b64decode(sloppy) == base64.b64decode(text)
        refused(lambda: parse_entry(good | {"public_key": sloppy}), "canonical")


@pytest.mark.parametrize("value", [None, 5, ["a"], {"k": 1}, True])
def test_a_public_key_that_is_not_a_string_is_refused(value: object) -> None:
    refused(lambda: parse_entry(entry() | {"public_key": value}), "public key")


# --- fingerprints -------------------------------------------------------------------------------


def test_fingerprint_mismatch() -> None:
    good, other = entry("mine"), entry("other")
    err = refused(
        lambda: parse_entry(good | {"fingerprint": other["fingerprint"]}, "recipient #2"),
        "fingerprint does not match",
        "recipient #2",
        "mine",
    )
    assert "keygen" in err.hint
    for value in (
        good["fingerprint"].replace(" ", ""),
        good["fingerprint"].replace(" ", "-"),
        good["fingerprint"] + " ",
        good["fingerprint"][:-1] + str((int(good["fingerprint"][-1]) + 1) % 10),
        "",
        None,
        12345,
        good["fingerprint"].split(" "),
    ):
        refused(lambda v=value: parse_entry(good | {"fingerprint": v}), "fingerprint")


# --- fields -------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["label", "public_key", "fingerprint", "created", "status"])
def test_missing_fields_are_named(field: str) -> None:
    bad = entry()
    del bad[field]
    refused(lambda: parse_entry(bad), "missing", field)


@pytest.mark.parametrize("field", ["secret_key", "comment", "Label", "expires", ""])
def test_unknown_fields_are_named(field: str) -> None:
    bad = entry() | {field: "x"}
    refused(lambda: parse_entry(bad), "unknown")


def test_a_secret_key_field_is_refused_not_ignored() -> None:
    secret = PrivateKey.generate()
    bad = RecipientKey("leaky", bytes(secret.public_key), TODAY).to_json()
    bad["secret_key"] = b64(bytes(secret))
    refused(lambda: parse_entry(bad), "secret_key")
    refused(lambda: parse_manifest(manifest(bad)), "secret_key")


@pytest.mark.parametrize(
    "label",
    [
        "",
        " ",
        " leading space",
        "trailing space ",
        "tab\there",
        "new\nline",
        "zero\u200bwidth",
        "bidi \u202eoverride",
        "x" * 121,
        None,
        5,
        ["a"],
        {"a": 1},
        True,
    ],
)
def test_bad_labels(label: object) -> None:
    refused(lambda: parse_entry(entry() | {"label": label}), "label")


GOOD_LABELS = ["a", "x" * 120, "Equipo de la ONU — clave 2026-A", "Ключ ООН 2026"]


@pytest.mark.parametrize("label", GOOD_LABELS)
def test_good_labels(label: str) -> None:
    assert parse_entry(entry(label)).label == label


@pytest.mark.parametrize(
    "created",
    ["2026-13-01", "2026-02-30", "23/11/2026", "2026-1-5", "20261123", "", "yesterday", None,
     20261123, ["2026-11-23"], "2026-11-23T10:00:00"],
)  # fmt: skip
def test_bad_dates(created: object) -> None:
    refused(lambda: parse_entry(entry() | {"created": created}), "created")


@pytest.mark.parametrize("status", ["Active", "revoked", "", None, 1, ["active"], {"a": 1}])
def test_bad_status(status: object) -> None:
    refused(lambda: parse_entry(entry() | {"status": status}), "status")


@pytest.mark.parametrize("demo", ["true", "false", 1, 0, None, [], {}])
def test_demo_flag_must_be_a_boolean(demo: object) -> None:
    refused(lambda: parse_entry(entry() | {"demo": demo}), "demo")


def test_duplicate_labels_or_keys() -> None:
    first = entry("same label")
    refused(lambda: parse_manifest(manifest(first, entry("same label"))), "same label")
    twin = copy.deepcopy(first) | {"label": "another label"}
    refused(lambda: parse_manifest(manifest(first, twin)), "same public key")
    retired_twin = twin | {"status": "retired"}
    refused(lambda: parse_manifest(manifest(first, retired_twin)), "same public key")


def test_demo_and_real_active_keys_do_not_mix() -> None:
    err = refused(lambda: parse_manifest(manifest(entry("real"), entry("DEMO", demo=True))), "demo")
    assert "retired" in err.hint
    parsed = parse_manifest(manifest(entry("real"), entry("DEMO", demo=True, status="retired")))
    assert [k.label for k in parsed.active] == ["real"]


@pytest.mark.parametrize(
    "version", [2, 0, "1", 1.0, True, None, [1], {"v": 1}], ids=lambda v: repr(v)
)
def test_manifest_version(version: object) -> None:
    refused(lambda: parse_manifest({"version": version, "recipients": []}), "version")


@pytest.mark.parametrize(
    "obj",
    [
        {"recipients": []},
        {"version": 1},
        {"version": 1, "recipients": [], "comment": "x"},
        {},
    ],
)
def test_manifest_members(obj: dict[str, Any]) -> None:
    refused(lambda: parse_manifest(obj), "version", "recipients")


# --- hostile shapes -----------------------------------------------------------------------------

HOSTILE_TOP_LEVEL = [[], [{"version": 1}], "manifest", 1, 1.5, None, True]
HOSTILE_RECIPIENTS = [{}, {"0": {}}, "entry", 1, None, True]
HOSTILE_ENTRIES = ["entry", 1, 1.5, None, True, [], [["label", "x"]]]


@pytest.mark.parametrize("obj", HOSTILE_TOP_LEVEL, ids=repr)
def test_hostile_top_level(obj: object) -> None:
    refused(lambda: parse_manifest(obj), "manifest")
    refused(lambda: parse_recipients(json.dumps(obj)))


@pytest.mark.parametrize("recipients", HOSTILE_RECIPIENTS, ids=repr)
def test_hostile_recipients(recipients: object) -> None:
    refused(lambda: parse_manifest({"version": 1, "recipients": recipients}), "recipients")


@pytest.mark.parametrize("item", HOSTILE_ENTRIES, ids=repr)
def test_hostile_entries(item: object) -> None:
    refused(lambda: parse_manifest(manifest(entry("fine"), item)), "recipient #2", "object")
    refused(lambda: parse_entry(item), "not a JSON object")


SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
FIELDS = ["label", "public_key", "fingerprint", "created", "status", "demo"]


@settings(max_examples=150, deadline=None)
@given(value=JSON_VALUES, field=st.sampled_from(FIELDS), where=st.sampled_from(["entry", "top"]))
def test_any_json_in_any_place_gives_a_manifest_error_or_a_manifest(
    value: object, field: str, where: str
) -> None:
    base = manifest(entry("fuzzed"))
    if where == "entry":
        base["recipients"][0][field] = value
        obj: object = base
    else:
        obj = value
    try:
        parse_manifest(obj)
    except KeyManifestError as err:
        assert str(err)
    try:
        parse_recipients(json.dumps(obj))
    except KeyManifestError as err:
        assert str(err)


# --- parse_recipients (what `--to` accepts) -----------------------------------------------------


def test_parse_recipients_one_entry_or_a_manifest() -> None:
    one = entry("single")
    assert [k.label for k in parse_recipients(json.dumps(one))] == ["single"]
    whole = manifest(entry("a"), entry("b"), entry("c", status="retired"))
    assert [k.label for k in parse_recipients(json.dumps(whole))] == ["a", "b"]


def test_parse_recipients_refuses_retired_or_nothing_to_seal_to() -> None:
    refused(lambda: parse_recipients(json.dumps(entry("old", status="retired"))), "retired")
    refused(lambda: parse_recipients(json.dumps(manifest())), "no active")
    only_retired = manifest(entry("old", status="retired"))
    refused(lambda: parse_recipients(json.dumps(only_retired)), "no active")


@pytest.mark.parametrize(
    "text",
    ["", "   ", "{", '{"label": }', "not json", "NaN", '{"version": Infinity, "recipients": []}',
     '{"version": 1, "recipients": [], "version": 1}', "\ufeff{}"],
)  # fmt: skip
def test_parse_recipients_refuses_bad_text(text: str) -> None:
    refused(lambda: parse_recipients(text))


def test_repeated_fields_are_refused() -> None:
    good = entry("repeat")
    other = entry("other")
    text = json.dumps(good)[:-1] + f', "public_key": "{other["public_key"]}"}}'
    refused(lambda: parse_recipients(text), "repeats")


# --- load_manifest ------------------------------------------------------------------------------


def write(tmp_path: Path, data: bytes | str) -> Path:
    target = tmp_path / "manifest.json"
    target.write_bytes(data.encode() if isinstance(data, str) else data)
    return target


def test_load_a_valid_manifest(tmp_path: Path) -> None:
    text = json.dumps(manifest(entry("Key A"), entry("Key B")), ensure_ascii=False, indent=2)
    parsed = load_manifest(write(tmp_path, text))
    assert [k.label for k in parsed.require_active()] == ["Key A", "Key B"]


def test_missing_file(tmp_path: Path) -> None:
    err = refused(lambda: load_manifest(tmp_path / "nowhere.json"), "cannot read", "nowhere.json")
    assert "PORTAL_KEYS_MANIFEST" in err.hint


def test_a_directory_is_not_a_manifest(tmp_path: Path) -> None:
    refused(lambda: load_manifest(tmp_path), "cannot read")


def test_permission_denied_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write(tmp_path, json.dumps(manifest()))

    def denied(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    err = refused(lambda: load_manifest(target), "cannot read", "Permission denied")
    assert "PORTAL_KEYS_MANIFEST" in err.hint


def test_not_utf8(tmp_path: Path) -> None:
    data = json.dumps(manifest(entry("Clé"))).encode("utf-8").replace(b"Cl", b"Cl\xe9")
    refused(lambda: load_manifest(write(tmp_path, data)), "not UTF-8")
    refused(lambda: load_manifest(write(tmp_path, "{}".encode("utf-16"))), "UTF-8")


def test_over_one_mib(tmp_path: Path) -> None:
    text = json.dumps(manifest())
    exact = text + " " * (keys.MAX_MANIFEST_BYTES - len(text))
    assert isinstance(load_manifest(write(tmp_path, exact)), Manifest)  # exactly 1 MiB is fine
    refused(lambda: load_manifest(write(tmp_path, exact + " ")), "larger than 1 MiB")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", ["JSON"]),
        ('{"version": 1,\n "recipients": [,]}', ["JSON", "line 2"]),
        ("\ufeff" + json.dumps(manifest()), ["JSON"]),
        ('{"version": NaN, "recipients": []}', ["NaN"]),
        ('{"version": 1, "version": 1, "recipients": []}', ["repeats"]),
        ("[]", ["manifest"]),
        ('{"version": 1, "recipients": {}}', ["recipients"]),
        ('{"version": 1, "recipients": ["key"]}', ["recipient #1"]),
        ('{"version": 1, "recipients": [null]}', ["recipient #1"]),
        ('{"version": 1, "recipients": [7]}', ["recipient #1"]),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, text: str, words: list[str]) -> None:
    refused(lambda: load_manifest(write(tmp_path, text)), *words)


def test_deeply_nested_json_is_a_manifest_error(tmp_path: Path) -> None:
    deep = '{"version": 1, "recipients": [' + "[" * 100_000 + "]" * 100_000 + "]}"
    assert len(deep) < keys.MAX_MANIFEST_BYTES
    refused(lambda: load_manifest(write(tmp_path, deep)), "JSON")
    refused(lambda: parse_recipients("[" * 100_000), "JSON")


def test_a_huge_integer_is_a_manifest_error(tmp_path: Path) -> None:
    huge = '{"version": ' + "1" * 5000 + ', "recipients": []}'
    refused(lambda: load_manifest(write(tmp_path, huge)), "JSON")


# --- hygiene ------------------------------------------------------------------------------------


def test_importing_keys_loads_no_web_or_database_module() -> None:
    code = (
        "import sys, portal.keys\n"
        "web = {'flask', 'werkzeug', 'sqlalchemy', 'jinja2', 'flask_wtf', 'alembic'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in web))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_non_ascii_public_key_is_a_manifest_error():
    entry = {"label": "a", "public_key": "\x80", "fingerprint": "x",
             "created": "2026-01-01", "status": "active"}  # fmt: skip
    with pytest.raises(KeyManifestError, match="not canonical base64"):
        keys.parse_entry(entry)


# --- the desk's signing keys (FORMAT.md §13.4) --------------------------------------------------

SIGNATURES = json.loads((REPO / "tests" / "vectors" / "v1" / "signatures.json").read_text())


def signer(label: str = "Reprisals desk signing 2026", **kwargs: Any) -> dict[str, Any]:
    public = bytes(SigningKey.generate().verify_key)
    return SigningPublicKey(label, public, TODAY, **kwargs).to_json()


def signed(
    *signers: dict[str, Any], recipients: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"version": 1, "recipients": [entry()] if recipients is None else recipients,
            "signing_keys": list(signers)}  # fmt: skip


def test_signing_keys_are_optional_and_round_trip() -> None:
    assert parse_manifest(manifest(entry())).signing_keys == ()
    assert parse_manifest({**manifest(entry()), "signing_keys": []}).signing_keys == ()
    one, two = signer("Desk 2026"), signer("Desk 2027")
    parsed = parse_manifest(signed(one, two))
    assert [k.to_json() for k in parsed.signing_keys] == [one, two]
    assert parse_manifest(parsed.to_json()) == parsed
    assert parsed.require_signing() == parsed.signing_keys
    # Fingerprints and key ids are those of portal.signing, not of the encryption keys.
    key = parsed.signing_keys[0]
    assert key.fingerprint == signing.fingerprint(key.public_key) == one["fingerprint"]
    assert key.fingerprint != envelope.fingerprint(key.public_key)
    assert "signing_keys" not in parse_manifest(manifest(entry())).to_json()


def test_the_known_answer_key_parses_with_its_fingerprint() -> None:
    known = SIGNATURES["keys"][0]
    obj = {"label": "Vector key", "public_key": known["public_key_base64"],
           "fingerprint": known["fingerprint"], "created": "2026-11-23"}  # fmt: skip
    (key,) = parse_manifest(signed(obj)).signing_keys
    assert key.key_id.hex() == known["key_id_hex"]


def test_no_signing_key_raises_with_a_hint() -> None:
    err = refused(lambda: parse_manifest(manifest(entry())).require_signing(), "no signing key")
    assert "keygen --signing" in err.hint


@pytest.mark.parametrize("case", SIGNATURES["invalid_public_keys"], ids=lambda c: c["description"])
def test_invalid_signing_keys_are_refused(case: dict[str, Any]) -> None:
    obj = {**signer(), "public_key": b64(bytes.fromhex(case["public_key_hex"]))}
    refused(lambda: parse_manifest(signed(obj)), "signing key #1")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"public_key": "%%%"}, ["not canonical base64"]),
        ({"public_key": None}, ["not canonical base64"]),
        ({"fingerprint": "00000 00000 00000 00000 00000 00000 00000 00000"}, ["fingerprint"]),
        ({"label": " padded "}, ["label"]),
        ({"label": ""}, ["label"]),
        ({"created": "2026-02-30"}, ["created"]),
        ({"demo": "yes"}, ["demo"]),
        ({"status": "active"}, ["unknown or missing fields: status"]),
        ({"secret_key": "AAAA"}, ["unknown or missing fields: secret_key"]),
    ],
)
def test_hostile_signing_entries(change: dict[str, Any], words: list[str]) -> None:
    refused(lambda: parse_manifest(signed({**signer(), **change})), *words)


def test_a_non_canonical_base64_signing_key_is_refused() -> None:
    obj = signer()
    text = obj["public_key"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    # The last character before "=" carries two unused bits: set one, the bytes stay the same.
    mangled = text[:-2] + alphabet[alphabet.index(text[-2]) ^ 1] + "="
    assert base64.b64decode(mangled) == base64.b64decode(text) and mangled != text
    refused(lambda: parse_manifest(signed({**obj, "public_key": mangled})), "canonical base64")
    for missing in ("label", "public_key", "fingerprint", "created"):
        partial = {k: v for k, v in obj.items() if k != missing}
        refused(lambda p=partial: parse_manifest(signed(p)), missing)


@pytest.mark.parametrize("value", [{}, "keys", 1, None, True, [[]], ["x"], [None]])
def test_hostile_signing_key_lists(value: object) -> None:
    refused(lambda: parse_manifest(signed(recipients=[entry()]) | {"signing_keys": value}))


def test_signing_keys_are_few_and_distinct() -> None:
    refused(lambda: parse_manifest(signed(*(signer(f"Desk {i}") for i in range(5)))), "at most 4")
    parse_manifest(signed(*(signer(f"Desk {i}") for i in range(4))))
    one = signer("Same")
    refused(lambda: parse_manifest(signed(one, signer("Same"))), "same label")
    refused(lambda: parse_manifest(signed(one, {**one, "label": "Other"})), "same public key")


def usable_as_both(raw: bytes) -> bool:
    try:
        check_public_key(raw)
    except KeyManifestError:
        return False
    return bool(bindings.crypto_core_ed25519_is_valid_point(raw))


def test_a_recipient_key_copied_into_signing_keys_is_refused() -> None:
    # The first fixed seed whose Ed25519 public key is also a usable X25519 key.
    point = next(
        p
        for p in (bytes(SigningKey(bytes([i]) * 32).verify_key) for i in range(256))
        if usable_as_both(p)
    )
    as_recipient = {**entry(), "public_key": b64(point), "fingerprint": envelope.fingerprint(point)}
    as_signer = {"label": "Copied", "public_key": b64(point),
                 "fingerprint": signing.fingerprint(point), "created": "2026-11-23"}  # fmt: skip
    refused(lambda: parse_manifest(signed(as_signer, recipients=[as_recipient])), "same bytes")
    # Most X25519 keys are no Ed25519 point at all, and are refused as such.
    raw = bytes(PrivateKey(bytes(range(32))).public_key)
    assert not bindings.crypto_core_ed25519_is_valid_point(raw)
    copied = {**as_signer, "public_key": b64(raw), "fingerprint": signing.fingerprint(raw)}
    refused(lambda: parse_manifest(signed(copied)), "not a valid Ed25519 public key")


def test_demo_and_real_keys_do_not_mix_across_recipients_and_signers() -> None:
    real, demo = entry("Real"), entry("Demo", demo=True)
    parse_manifest(signed(signer(demo=True), recipients=[demo]))
    parse_manifest(signed(signer(), recipients=[real]))
    for recipients, signers in (([real], [signer(demo=True)]), ([demo], [signer()]),
                                ([real], [signer("A"), signer("B", demo=True)])):  # fmt: skip
        refused(lambda r=recipients, s=signers: parse_manifest(signed(*s, recipients=r)), "mixes")
    # A retired demo recipient beside a real desk is still allowed.
    parse_manifest(
        signed(signer(), recipients=[real, entry("Old demo", status="retired", demo=True)])
    )


# --- the demo signing key (portal/demo.py) ------------------------------------------------------


def test_the_demo_directory_has_a_labelled_demo_signing_key(tmp_path: Path) -> None:
    path = demo.ensure_demo_key(tmp_path / "demo")
    parsed = load_manifest(path)
    (signer_key,) = parsed.require_signing()
    assert signer_key.demo and signer_key.label.startswith("DEMO SIGNING KEY")
    folder = tmp_path / "demo"
    assert oct((folder / demo.SIGNING_FILE_NAME).stat().st_mode & 0o777) == oct(0o600)
    phrase = (folder / demo.UNLOCK_FILE_NAME).read_text().splitlines()[0]
    unlocked = keyfile.load_signing(folder / demo.SIGNING_FILE_NAME, phrase)
    assert bytes(unlocked.verify_key) == signer_key.public_key
    before = path.read_bytes()
    assert demo.ensure_demo_key(folder) == path and path.read_bytes() == before


def test_an_older_demo_directory_gains_a_demo_signing_key(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    path = demo.ensure_demo_key(folder)
    old = json.loads(path.read_text())
    del old["signing_keys"]
    path.write_text(json.dumps(old))
    (folder / demo.SIGNING_FILE_NAME).unlink()
    demo.ensure_demo_key(folder)
    parsed = load_manifest(path)
    assert [k.to_json() for k in parsed.recipients] == old["recipients"]
    assert len(parsed.require_signing()) == 1 and parsed.signing_keys[0].demo
