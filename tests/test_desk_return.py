"""``portal-desk return``: the return bundle of BUNDLES.md §8, written from the case store."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from test_bundle import Desk, assert_error, desk, exported, import_args, key_args, store_rows

from portal import bundle, returnbundle
from portal.desk.casestore import STORE_FILE

__all__ = ["desk", "exported"]  # fixtures used here
TODAY = dt.datetime.now(dt.UTC).date()


def returned(store: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{store / STORE_FILE}")
    try:
        with engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(text("SELECT item_id FROM returned")))
    finally:
        engine.dispose()


def test_return_acknowledges_every_opened_item_once(desk: Desk, exported: Path, desk_keys,
                                                    tmp_path):  # fmt: skip
    store = tmp_path / "store"
    assert desk(*import_args(store, exported, desk_keys)).code == 0
    out = tmp_path / "return.tar"
    result = desk("return", "--store", store, "-o", out)
    assert result.code == 0, result.err
    assert "3 items acknowledged" in result.err
    data = out.read_bytes()
    parsed = returnbundle.parse(data)
    with bundle.read_export(exported) as source:
        expected = sorted((i.id, i.sha256) for i in source.items)
    assert [(a.id, a.sha256) for a in parsed.acknowledgements] == expected
    assert parsed.made_on == TODAY
    # The exact bytes of BUNDLES.md §8: one ustar member return.json, then two zero blocks.
    manifest = returnbundle.manifest_bytes(TODAY, parsed.acknowledgements)
    assert data[:512] == bundle.tar_header("return.json", len(manifest))
    assert data[512 : 512 + len(manifest)] == manifest
    assert len(data) == 512 + len(manifest) + -len(manifest) % 512 + 1024
    document = json.loads(manifest)
    assert document["type"] == "reprisals-portal return" and document["version"] == 1
    assert document["replies"] == []
    assert [a["id"] for a in document["acknowledgements"]] == [e[0] for e in expected]
    assert oct(out.stat().st_mode & 0o777) == oct(0o600)
    assert returned(store) == [e[0] for e in expected]

    # Nothing new since: the next return acknowledges nothing.
    again = tmp_path / "again.tar"
    result = desk("return", "--store", store, "-o", again)
    assert result.code == 0 and "nothing new to acknowledge" in result.err
    assert returnbundle.parse(again.read_bytes()).acknowledgements == ()


def test_failed_items_are_never_acknowledged(desk: Desk, exported: Path, desk_keys, tmp_path):
    store = tmp_path / "store"
    wrong = ["import", "--store", store, *key_args(desk_keys, 2), exported]
    assert desk(*wrong).code == 1
    assert {r["status"] for r in store_rows(store)["items"]} == {"failed"}
    out = tmp_path / "return.tar"
    assert desk("return", "--store", store, "-o", out).code == 0
    assert returnbundle.parse(out.read_bytes()).acknowledgements == ()
    # Once they open, the next return acknowledges them.
    assert desk(*import_args(store, exported, desk_keys)).code == 0
    later = tmp_path / "later.tar"
    assert desk("return", "--store", store, "-o", later).code == 0
    assert len(returnbundle.parse(later.read_bytes()).acknowledgements) == 3


def test_return_refuses_to_overwrite_and_records_nothing(desk: Desk, exported: Path,
                                                         desk_keys, tmp_path):  # fmt: skip
    store = tmp_path / "store"
    assert desk(*import_args(store, exported, desk_keys)).code == 0
    out = tmp_path / "return.tar"
    out.write_bytes(b"keep me")
    result = desk("return", "--store", store, "-o", out)
    assert_error(result, "already exists")
    assert out.read_bytes() == b"keep me"
    assert returned(store) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_return_needs_a_store_and_an_output(desk: Desk, tmp_path):
    assert_error(desk("return", "--store", tmp_path / "none", "-o", tmp_path / "r.tar"),
                 "there is no case store")  # fmt: skip
    assert desk("return", "--store", tmp_path).code == 2


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d[:600], "cut short"),
        (lambda d: b"", "empty"),
        (lambda d: b"x" * 2048, "not a return bundle"),
        (lambda d: d + b"\x01", "after the end"),
        (lambda d: d[:10] + b"X" + d[11:], "damaged"),
        (lambda d: d[:520] + b"[" + d[521:], "unexpected"),
        (lambda d: d.replace(b'"version":1', b'"version":2'), "not supported"),
    ],
)
def test_the_reader_refuses_damaged_bundles(change, fragment):
    ack = returnbundle.Acknowledgement("a" * 32, bytes(32))
    out = io.BytesIO()
    returnbundle.write_return([ack], out, TODAY)
    data = out.getvalue()
    assert returnbundle.parse(data).acknowledgements == (ack,)
    with pytest.raises(bundle.BundleError, match=fragment):
        returnbundle.parse(change(data))
