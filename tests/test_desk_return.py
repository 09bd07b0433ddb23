"""``portal-desk return``: the return bundle of BUNDLES.md §8, written from the case store."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from sqlalchemy import create_engine, text
from test_bundle import Desk, assert_error, desk, exported, import_args, key_args, store_rows

from portal import bundle, keyfile, returnbundle, signing
from portal.desk.casestore import STORE_FILE

__all__ = ["desk", "exported"]  # fixtures used here
TODAY = dt.datetime.now(dt.UTC).date()
SIGNER = SigningKey(bytes(range(32)))  # a fixed test key for the reader's tests
SIGNER_PUBLIC = bytes(SIGNER.verify_key)


def returned(store: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{store / STORE_FILE}")
    try:
        with engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(text("SELECT item_id FROM returned")))
    finally:
        engine.dispose()


def test_return_acknowledges_every_opened_item_once(desk: Desk, exported: Path, desk_keys,
                                                    desk_signer, tmp_path):  # fmt: skip
    store = tmp_path / "store"
    assert desk(*import_args(store, exported, desk_keys)).code == 0
    out = tmp_path / "return.tar"
    result = desk("return", "--store", store, *desk_signer.return_args(), "-o", out)
    assert result.code == 0, result.err
    assert "3 items acknowledged" in result.err
    data = out.read_bytes()
    parsed = returnbundle.parse(data, [desk_signer.entry.public_key])
    assert parsed.signer == desk_signer.entry.public_key
    assert "signed with 'Desk signing'" in result.err
    with bundle.read_export(exported) as source:
        expected = sorted((i.id, i.sha256) for i in source.items)
    assert [(a.id, a.sha256) for a in parsed.acknowledgements] == expected
    assert parsed.made_on == TODAY
    # The exact bytes of BUNDLES.md §8: return.json, return.sig, then two zero blocks.
    manifest = returnbundle.manifest_bytes(TODAY, parsed.acknowledgements)
    assert data[:512] == bundle.tar_header("return.json", len(manifest))
    assert data[512 : 512 + len(manifest)] == manifest
    at = 512 + len(manifest) + -len(manifest) % 512
    sig = json.loads(data[at + 512 : at + 1024].rstrip(b"\x00"))
    assert data[at : at + 512] == bundle.tar_header("return.sig", len(json.dumps(sig,
        sort_keys=True, separators=(",", ":"))) + 1)  # fmt: skip
    assert sig["type"] == "reprisals-portal return signature" and sig["version"] == 1
    assert sig["key_id"] == signing.key_id(desk_signer.entry.public_key).hex()
    assert signing.verify(desk_signer.entry.public_key,
                          b"reprisals-portal/v1 return\n" + hashlib.sha256(manifest).digest(),
                          base64.b64decode(sig["signature"]))  # fmt: skip
    assert len(data) == at + 1024 + 1024
    document = json.loads(manifest)
    assert document["type"] == "reprisals-portal return" and document["version"] == 1
    assert document["replies"] == []
    assert [a["id"] for a in document["acknowledgements"]] == [e[0] for e in expected]
    assert oct(out.stat().st_mode & 0o777) == oct(0o600)
    assert returned(store) == [e[0] for e in expected]

    # Nothing new since: the next return acknowledges nothing.
    again = tmp_path / "again.tar"
    result = desk("return", "--store", store, *desk_signer.return_args(), "-o", again)
    assert result.code == 0 and "nothing new to acknowledge" in result.err
    assert returnbundle.parse(again.read_bytes(), [SIGNER_PUBLIC, desk_signer.entry.public_key]
                              ).acknowledgements == ()  # fmt: skip


def test_failed_items_are_never_acknowledged(desk: Desk, exported: Path, desk_keys, desk_signer,
                                             tmp_path):  # fmt: skip
    store = tmp_path / "store"
    wrong = ["import", "--store", store, *key_args(desk_keys, 2), exported]
    assert desk(*wrong).code == 1
    assert {r["status"] for r in store_rows(store)["items"]} == {"failed"}
    out = tmp_path / "return.tar"
    assert desk("return", "--store", store, *desk_signer.return_args(), "-o", out).code == 0
    assert returnbundle.parse(out.read_bytes(), [desk_signer.entry.public_key]
                              ).acknowledgements == ()  # fmt: skip
    # Once they open, the next return acknowledges them.
    assert desk(*import_args(store, exported, desk_keys)).code == 0
    later = tmp_path / "later.tar"
    assert desk("return", "--store", store, *desk_signer.return_args(), "-o", later).code == 0
    keys = [desk_signer.entry.public_key]
    assert len(returnbundle.parse(later.read_bytes(), keys).acknowledgements) == 3


def test_return_refuses_to_overwrite_and_records_nothing(
    desk: Desk, exported: Path, desk_keys, desk_signer, tmp_path
):
    store = tmp_path / "store"
    assert desk(*import_args(store, exported, desk_keys)).code == 0
    out = tmp_path / "return.tar"
    out.write_bytes(b"keep me")
    result = desk("return", "--store", store, *desk_signer.return_args(), "-o", out)
    assert_error(result, "already exists")
    assert out.read_bytes() == b"keep me"
    assert returned(store) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_return_needs_a_store_and_an_output(desk: Desk, desk_signer, tmp_path):
    missing = tmp_path / "none"
    result = desk("return", "--store", missing, *desk_signer.return_args(), "-o", tmp_path / "r")
    assert_error(result, "there is no case store")
    assert desk("return", "--store", tmp_path).code == 2
    # The signing key is required: an unsigned return bundle is never written.
    assert desk("return", "--store", tmp_path, "-o", tmp_path / "r.tar").code == 2
    assert not (tmp_path / "r.tar").exists()


def signed(manifest: bytes, key: SigningKey = SIGNER, replies: bytes = b"") -> bytes:
    """A return bundle of ``manifest``, signed with ``key`` (whatever ``manifest`` holds)."""
    seal = signing.sign(key, signing.return_message(manifest))
    sig = returnbundle.signature_bytes(signing.key_id(bytes(key.verify_key)), seal)
    parts = [bundle.tar_header("return.json", len(manifest)), manifest,
             bytes(-len(manifest) % 512), bundle.tar_header("return.sig", len(sig)), sig,
             bytes(-len(sig) % 512), replies, bytes(1024)]  # fmt: skip
    return b"".join(parts)


def one_ack() -> bytes:
    ack = returnbundle.Acknowledgement("a" * 32, bytes(32))
    out = io.BytesIO()
    returnbundle.write_return([ack], out, TODAY, signer=SIGNER)
    data = out.getvalue()
    assert returnbundle.parse(data, [SIGNER_PUBLIC]).acknowledgements == (ack,)
    return data


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d[:600], "cut short"),
        (lambda d: d[:1100], "cut short"),
        (lambda d: b"", "empty"),
        (lambda d: b"x" * 2048, "not a return bundle"),
        (lambda d: d + b"\x01", "after the end"),
        (lambda d: d[:10] + b"X" + d[11:], "damaged"),
        # Any change to return.json, however small, breaks the signature first.
        (lambda d: d[:520] + b"[" + d[521:], "does not verify"),
        (lambda d: d.replace(b'"version":1', b'"version":2', 1), "does not verify"),
        (lambda d: d.replace(b"a" * 32, b"b" * 32, 1), "does not verify"),
    ],
)
def test_the_reader_refuses_damaged_bundles(change, fragment):
    with pytest.raises(bundle.BundleError, match=fragment):
        returnbundle.parse(change(one_ack()), [SIGNER_PUBLIC])


def test_the_reader_still_checks_a_validly_signed_return_json_strictly():
    good = returnbundle.manifest_bytes(TODAY, [returnbundle.Acknowledgement("a" * 32, bytes(32))])
    for manifest, fragment in (
        (good[:8] + b"[" + good[9:], "unexpected|not valid"),
        (good.replace(b'"version":1', b'"version":2'), "not supported"),
        (good.replace(b'"acknowledgements"', b'"acks"'), "acks"),
    ):
        with pytest.raises(bundle.BundleError, match=fragment):
            returnbundle.parse(signed(manifest), [SIGNER_PUBLIC])
    assert returnbundle.parse(signed(good), [SIGNER_PUBLIC]).signer == SIGNER_PUBLIC


def test_unsigned_foreign_and_wrongly_signed_bundles_are_refused():
    data = one_ack()
    manifest_end = 512 + 512  # return.json is short: one block of data
    unsigned = data[:manifest_end] + bytes(1024)
    other = SigningKey(bytes(range(1, 33)))
    cases = [
        (unsigned, [SIGNER_PUBLIC], "not signed"),
        (data, [bytes(other.verify_key)], "a key this server does not know"),
        (data, [], "no signing key"),
    ]
    # The right key id, but signed by another key (a forged signature).
    good = data[512:manifest_end].rstrip(b"\x00")
    seal = signing.sign(other, signing.return_message(good))
    forged_sig = returnbundle.signature_bytes(signing.key_id(SIGNER_PUBLIC), seal)
    forged = (data[:manifest_end] + bundle.tar_header("return.sig", len(forged_sig)) + forged_sig
              + bytes(-len(forged_sig) % 512) + bytes(1024))  # fmt: skip
    cases.append((forged, [SIGNER_PUBLIC], "does not verify"))
    # A signature made for another purpose (a reply's) over the same bytes.
    as_reply = signing.sign(SIGNER, signing.REPLY_PURPOSE + hashlib.sha256(good).digest())
    wrong_sig = returnbundle.signature_bytes(signing.key_id(SIGNER_PUBLIC), as_reply)
    wrong = (data[:manifest_end] + bundle.tar_header("return.sig", len(wrong_sig)) + wrong_sig
             + bytes(-len(wrong_sig) % 512) + bytes(1024))  # fmt: skip
    cases.append((wrong, [SIGNER_PUBLIC], "does not verify"))
    for bad, keys, fragment in cases:
        with pytest.raises(returnbundle.BadSignature, match=fragment) as caught:
            returnbundle.parse(bad, keys)
        assert "portal-desk return --sign-key" in caught.value.hint


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (b"{}", "not the manifest"),
        (b'{"type":"reprisals-portal return signature","version":1,"key_id":"00","signature":""}',
         "key_id"),
        (b'{"type":"reprisals-portal return signature","version":1,"key_id":"' + b"0" * 32
         + b'","signature":"AAAA"}', "signature is not 64 bytes"),
        (b'{"type":"reprisals-portal return signature","version":1,"key_id":"' + b"0" * 32
         + b'","signature":"' + base64.b64encode(bytes(64)) + b'","extra":1}', "extra"),
        (b"\xff", "not UTF-8"),
    ],
)  # fmt: skip
def test_a_hostile_signature_member_is_refused(document, fragment):
    good = returnbundle.manifest_bytes(TODAY, [])
    data = (bundle.tar_header("return.json", len(good)) + good + bytes(-len(good) % 512)
            + bundle.tar_header("return.sig", len(document)) + document
            + bytes(-len(document) % 512) + bytes(1024))  # fmt: skip
    with pytest.raises(bundle.BundleError, match=fragment):
        returnbundle.parse(data, [SIGNER_PUBLIC])
    oversized = data.replace(bundle.tar_header("return.sig", len(document)),
                             bundle.tar_header("return.sig", 600))  # fmt: skip
    with pytest.raises(bundle.BundleError, match="damaged or of the wrong size"):
        returnbundle.parse(oversized, [SIGNER_PUBLIC])


def test_kind_confusion_is_refused_with_a_hint(desk: Desk, exported: Path, desk_keys,
                                               desk_signer, tmp_path):  # fmt: skip
    store = tmp_path / "store"
    assert desk(*import_args(store, exported, desk_keys)).code == 0
    out = tmp_path / "return.tar"
    result = desk("return", "--store", store, "--sign-key", desk_keys[0].secret_file,
                  "--passphrase-file", desk_keys[0].passphrase_file, "-o", out)  # fmt: skip
    assert_error(result, "is an encryption key, not a signing key")
    assert "keygen --signing" in result.err
    assert not out.exists() and returned(store) == []
    # And the other way round: the signing key cannot open envelopes.
    with pytest.raises(keyfile.KeyFileError, match="is a signing key") as caught:
        keyfile.read(desk_signer.secret_file)
    assert "return --sign-key" in caught.value.hint
    wrong = ["import", "--store", tmp_path / "other", "--secret-key", desk_signer.secret_file,
             "--passphrase-file", desk_signer.passphrase_file, exported]  # fmt: skip
    assert_error(desk(*wrong), "is a signing key, not an encryption key")


def test_a_wrong_signing_passphrase_records_nothing(desk: Desk, exported: Path, desk_keys,
                                                   desk_signer, tmp_path):  # fmt: skip
    store = tmp_path / "store"
    assert desk(*import_args(store, exported, desk_keys)).code == 0
    wrong = tmp_path / "wrong.passphrase"
    wrong.write_text("not the passphrase at all\n")
    out = tmp_path / "return.tar"
    result = desk("return", "--store", store, "--sign-key", desk_signer.secret_file,
                  "--passphrase-file", wrong, "-o", out)  # fmt: skip
    assert_error(result, "wrong passphrase")
    assert not out.exists() and returned(store) == []
