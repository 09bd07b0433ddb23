"""Export bundles (docs/BUNDLES.md) and ``portal-desk import``, ``cases`` and ``show``.

Real crypto and real databases: submissions are stored through the source
app's test client (both sealing paths) or ``portal.storage``, exported from
SQLite and PostgreSQL with ``portal.export.export_to``, and imported into a
desk case store with the team's secret key files.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from source_fixtures import (
    Team,
    answers,
    browser_envelope,
    clear_reply_key,
    post_plain,
    reply_key,
    snapshot,
    upload,
)
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from portal import bundle, envelope, receipt, replykey, report, storage
from portal.desk.casestore import STORE_FILE, Case, Item
from portal.desk.cli import main
from portal.envelope import SealPath
from portal.export import export_to
from portal.models import SealedBy

if TYPE_CHECKING:
    from conftest import DeskKey

DAY = dt.date(2026, 11, 23)


@dataclass
class Result:
    code: int
    out: str
    err: str


Desk = Callable[..., Result]


@pytest.fixture()
def desk(capsysbinary: pytest.CaptureFixture[bytes]) -> Desk:
    def run(*argv: object) -> Result:
        code = main([str(a) for a in argv])
        out, err = capsysbinary.readouterr()
        return Result(code, out.decode(), err.decode())

    return run


def assert_error(result: Result, *fragments: str) -> None:
    """Exit 1, no traceback, every error line followed by a hint line."""
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("portal-desk: error: ")]
    assert errors, result.err
    for i in errors:
        assert lines[i + 1].startswith("portal-desk: hint: "), result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


def key_args(desk_keys: tuple[DeskKey, ...], which: int = 0) -> list[object]:
    key = desk_keys[which]
    return ["--secret-key", key.secret_file, "--passphrase-file", key.passphrase_file]


def import_args(store: Path, path: Path, desk_keys: tuple[DeskKey, ...]) -> list[object]:
    return ["import", "--store", store, *key_args(desk_keys), path]


def store_rows(store: Path) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(f"sqlite:///{store / STORE_FILE}")
    try:
        with engine.connect() as conn:
            return {
                t.name: [dict(r._mapping) for r in conn.execute(select(t))]
                for t in (Case.__table__, Item.__table__)
            }
    finally:
        engine.dispose()


def items_by_id(store: Path) -> dict[str, Item]:
    engine = create_engine(f"sqlite:///{store / STORE_FILE}")
    try:
        with Session(engine) as db:
            return {i.id: i for i in db.scalars(select(Item))}
    finally:
        engine.dispose()


def submit_browser(
    client: FlaskClient, team: Team, fields: dict[str, Any], *, swap: bool = False
) -> bytes:
    """A browser-sealed report whose document carries the reply key the server is given
    (or, with ``swap``, a different one, as a server that swapped it would export)."""
    key = reply_key()
    body = browser_envelope(team, report.document(fields, key, "browser"))
    header = reply_key() if swap else key
    response = upload(client, body, reply=base64.b64encode(header).decode())
    assert response.status_code == 201, response.get_data(as_text=True)
    return key


def submit_plain(client: FlaskClient, **overrides: Any) -> None:
    response = post_plain(client, answers(**overrides))
    assert response.status_code == 200, response.get_data(as_text=True)


BROWSER_FIELDS = {
    "target_kind": "group",
    "acts": ["detention", "torture"],
    "country": "Ruritania",
    "consent_informed": "yes",
    "consent_publication": "no",
    "consent_raise_with_state": "yes",
    "consent_reply": "yes",
    "urgent": True,
    "account": "Они пришли ночью.\nAfter the session in Geneva.",
}


def export(app: Flask, path: Path, day: dt.date = DAY) -> tuple[bundle.Item, ...]:
    state = app.extensions["portal.source"]
    with path.open("wb") as out:
        return export_to(state.db, state.config.data_dir, out, day, mask_key=state.mask_key)


@pytest.fixture()
def exported(app: Flask, client: FlaskClient, team_keys: Team, tmp_path: Path) -> Path:
    """Two browser reports and one server-sealed report, exported."""
    submit_browser(client, team_keys, BROWSER_FIELDS)
    submit_browser(client, team_keys, {**BROWSER_FIELDS, "country": "Utopia"})
    submit_plain(client)
    path = tmp_path / "export.tar"
    export(app, path)
    return path


# --- export ------------------------------------------------------------------------------


def test_export_lists_every_submission_with_its_thread_key_and_deletes_nothing(
    app: Flask, client: FlaskClient, team_keys: Team, tmp_path: Path
) -> None:
    submit_browser(client, team_keys, BROWSER_FIELDS)
    submit_plain(client)
    before = snapshot(app)
    items = export(app, tmp_path / "a.tar")
    assert snapshot(app) == before
    state = app.extensions["portal.source"]
    from portal.models import Submission

    with state.db.session() as db:
        rows = {s.id: s for s in db.scalars(select(Submission))}
        threads = {s.id: clear_reply_key(s.thread) for s in rows.values()}
        stored = {s.id: bytes(s.thread.reply_public_key) for s in rows.values()}
    assert {i.id for i in items} == set(rows)
    for item in items:
        row = rows[item.id]
        data = storage.envelope_path(state.config.data_dir, item.id).read_bytes()
        header = envelope.parse_header(data)
        assert item.sha256 == hashlib.sha256(data).digest()
        assert item.envelope_size == len(data) == row.envelope_size
        assert item.padded_size == header.padded_size == row.padded_size
        assert item.recipient_key_ids == header.key_ids == row.key_ids
        assert item.sealed_by == row.sealed_by.value
        assert item.thread_id == row.thread_id
        # The manifest carries the clear key (the desk compares it with the sealed one);
        # the database holds it masked.
        assert item.reply_public_key == threads[item.id] != stored[item.id]
        assert item.received_on == row.received_on
    assert {i.sealed_by for i in items} == {"browser", "server"}
    with bundle.read_export(tmp_path / "a.tar") as read:
        assert read.items == items
        assert read.made_on == DAY
        for item, stream in bundle.iter_items(read):
            assert hashlib.sha256(stream.read()).digest() == item.sha256


def test_exporting_twice_gives_identical_bytes(
    app: Flask, client: FlaskClient, team_keys: Team, tmp_path: Path
) -> None:
    for _ in range(3):
        submit_browser(client, team_keys, BROWSER_FIELDS)
    export(app, tmp_path / "1.tar")
    export(app, tmp_path / "2.tar")
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()


def test_the_archive_is_a_plain_ustar_of_regular_files(exported: Path) -> None:
    import tarfile

    with tarfile.open(exported) as tar:
        members = tar.getmembers()
        assert members[0].name == "bundle.json"
        assert all(m.isreg() and m.mode == 0o600 and m.mtime == 0 for m in members)
        assert all(m.uid == 0 and m.gid == 0 and m.uname == m.gname == "" for m in members)
        manifest = json.loads(tar.extractfile(members[0]).read())  # type: ignore[union-attr]
    assert manifest["type"] == "reprisals-portal export" and manifest["version"] == 1
    names = [f"envelopes/{i['id']}.env" for i in manifest["items"]]
    assert [m.name for m in members[1:]] == names
    assert exported.read_bytes()[-1024:] == bytes(1024)


def test_an_empty_server_exports_an_empty_bundle(sqlite_app: Flask, tmp_path: Path) -> None:
    assert export(sqlite_app, tmp_path / "e.tar") == ()
    with bundle.read_export(tmp_path / "e.tar") as read:
        assert read.items == ()


def test_export_refuses_an_envelope_file_of_the_wrong_size(
    sqlite_app: Flask, team_keys: Team, tmp_path: Path
) -> None:
    client = sqlite_app.test_client()
    submit_browser(client, team_keys, BROWSER_FIELDS)
    data_dir = sqlite_app.extensions["portal.source"].config.data_dir
    (path,) = (data_dir / "envelopes").iterdir()
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(bundle.ExportError, match=r"not .* bytes long"):
        export(sqlite_app, tmp_path / "x.tar")


def test_write_export_never_writes_what_a_reader_refuses() -> None:
    entry = bundle.Entry(
        "../../etc/passwd", "b" * 32, DAY, "browser", 65536, 65536 + 48 + 96 + 16,
        (bytes(16),), reply_key(),
    )  # fmt: skip
    data = bytes(entry.envelope_size)
    with pytest.raises(bundle.ExportError, match="id is not in the expected form"):
        bundle.write_export([entry], lambda _id: io.BytesIO(data), io.BytesIO(), DAY)


def test_write_export_streams_in_blocks(tmp_path: Path) -> None:
    """A file larger than a copy block goes through unchanged, read in bounded blocks."""
    data = envelope.seal(os.urandom(3 << 20), [reply_key()], SealPath.BROWSER)
    header = envelope.parse_header(data)
    entry = bundle.Entry(
        "a" * 32, "b" * 32, DAY, "browser", header.padded_size, len(data), header.key_ids,
        reply_key(),
    )  # fmt: skip
    reads: list[int] = []

    class Recording(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(-1 if size is None else size)
            return super().read(size)

    out = io.BytesIO()
    bundle.write_export([entry], lambda _id: Recording(data), out, DAY)
    assert max(reads) <= bundle.COPY_BLOCK
    (tmp_path / "big.tar").write_bytes(out.getvalue())
    with bundle.read_export(tmp_path / "big.tar") as read, read.open(read.items[0]) as stream:
        assert stream.read() == data


# --- import: the round trip --------------------------------------------------------------


def test_export_then_import_gives_back_every_field(
    app: Flask,
    client: FlaskClient,
    team_keys: Team,
    desk: Desk,
    desk_keys: tuple[DeskKey, ...],
    tmp_path: Path,
) -> None:
    keys = [submit_browser(client, team_keys, BROWSER_FIELDS)]
    submit_plain(client)
    items = export(app, tmp_path / "export.tar")
    store = tmp_path / "store"
    result = desk(*import_args(store, tmp_path / "export.tar", desk_keys))
    assert result.code == 0, result.err
    assert "2 items imported (2 new cases)" in result.err
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert stat.S_IMODE((store / STORE_FILE).stat().st_mode) == 0o600
    stored = items_by_id(store)
    rows = store_rows(store)
    assert len(rows["cases"]) == 2
    for item in items:
        row = stored[item.id]
        assert row.status == "opened" and row.error is None
        assert row.sha256 == item.sha256
        assert row.received_on == item.received_on
        assert row.sealed_by == item.sealed_by
        assert row.thread_id == item.thread_id
        assert json.loads(row.problems) == []
        document = json.loads(row.document or "")
        assert document["sealed_by"] == item.sealed_by
        assert base64.b64decode(document["reply_public_key"]) == item.reply_public_key
        if item.sealed_by == "browser":
            assert document["fields"] == BROWSER_FIELDS
            assert item.reply_public_key == keys[0]
        else:
            assert document["fields"] == report.from_form(
                {k: v if isinstance(v, list) else [v] for k, v in answers().items()}
            )
    case_keys = {c["thread_id"]: c["reply_public_key"] for c in rows["cases"]}
    assert case_keys == {i.thread_id: i.reply_public_key for i in items}


def test_importing_the_same_bundle_twice_changes_nothing(
    exported: Path, desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    assert desk(*import_args(store, exported, desk_keys)).code == 0
    before = store_rows(store)
    again = desk(*import_args(store, exported, desk_keys))
    assert again.code == 0, again.err
    assert "nothing changed: all 3 items were already in the case store" in again.err
    assert store_rows(store) == before


def test_cases_and_show_print_the_reports(
    exported: Path, desk: Desk, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    assert desk(*import_args(store, exported, desk_keys)).code == 0
    listing = desk("cases", "--store", store)
    assert listing.code == 0, listing.err
    lines = listing.out.splitlines()
    assert lines[0].split()[:3] == ["case", "first", "day"]
    assert len(lines) == 4
    ruritania = next(line for line in lines if "Ruritania" in line)
    assert "URGENT" in ruritania and "detention, torture" in ruritania and " no " in ruritania
    case_id = ruritania.split()[0]
    shown = desk("show", "--store", store, case_id[:8])
    assert shown.code == 0, shown.err
    assert f"Case {case_id}" in shown.out
    assert "Who was targeted?: A group of people" in shown.out
    assert "What was done (choose all that apply): Arbitrary arrest or detention; Torture" in (
        shown.out
    )
    assert "This is urgent: someone is in danger now: Yes" in shown.out
    assert "Они пришли ночью.\n      After the session in Geneva." in shown.out
    assert "WARNING" not in shown.out


def test_show_and_cases_refuse_a_missing_store_or_case(desk: Desk, tmp_path: Path) -> None:
    assert_error(desk("cases", "--store", tmp_path / "none"), "no case store")
    assert_error(desk("show", "--store", tmp_path / "none", "abcd"), "no case store")


# --- import: hostile and damaged bundles --------------------------------------------------


def _header(name: bytes, size: int, kind: bytes = b"0", size_field: bytes | None = None) -> bytes:
    head = bytearray(bundle.tar_header("x", size))
    head[0:100] = name.ljust(100, b"\x00")
    head[156:157] = kind
    if size_field is not None:
        head[124:136] = size_field
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\x00 " % sum(head)
    return bytes(head)


def _member(name: bytes, data: bytes, kind: bytes = b"0") -> bytes:
    return _header(name, len(data), kind) + data + bytes(-len(data) % 512)


def _parts(path: Path) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The manifest and the envelope members of a good bundle."""
    with bundle.read_export(path) as read:
        manifest = bundle.manifest_bytes(read.made_on, read.items)
        return manifest, [(i.member_name, read.read(i)) for i in read.items]


def _archive(*members: bytes) -> bytes:
    return b"".join(members) + bytes(1024)


def _rewrite_manifest(manifest: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    obj = json.loads(manifest)
    change(obj)
    return json.dumps(obj).encode()


def _hostile(kind: str, good: bytes, manifest: bytes, envs: list[tuple[str, bytes]]) -> bytes:
    members = [_member(name.encode(), data) for name, data in envs]
    head = _member(b"bundle.json", manifest)
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "flipped-manifest":
        at = 512
        return good[:at] + bytes([good[at] ^ 0x01]) + good[at + 1 :]
    if kind == "extra-member":
        return _archive(head, *members, _member(b"notes.txt", b"hello"))
    if kind == "dot-dot":
        return _archive(head, _member(b"../evil.env", envs[0][1]), *members[1:])
    if kind == "absolute":
        return _archive(head, _member(b"/tmp/evil.env", envs[0][1]), *members[1:])
    if kind == "symlink":
        return _archive(head, _header(envs[0][0].encode(), 0, b"2"), *members[1:])
    if kind == "hardlink":
        return _archive(head, _header(envs[0][0].encode(), 0, b"1"), *members[1:])
    if kind == "device":
        return _archive(head, _header(envs[0][0].encode(), 0, b"3"), *members[1:])
    if kind == "pax-header":
        pax = _member(b"PaxHeader", b"30 path=envelopes/evil.env\n", b"x")
        return _archive(head, pax, *members)
    if kind == "directory":
        return _archive(head, _member(b"envelopes/", b"", b"5"), *members)
    if kind == "duplicate-id":
        dup = _rewrite_manifest(manifest, lambda o: o["items"].append(o["items"][0]))
        return _archive(_member(b"bundle.json", dup), *members, members[0])
    if kind == "huge-size":
        huge = _header(envs[0][0].encode(), 0, size_field=b"77777777777\x00")
        return _archive(head, huge)
    if kind == "huge-manifest":
        return _header(b"bundle.json", 0, size_field=b"77777777777\x00") + bytes(4096)
    if kind == "unknown-version":
        v2 = _rewrite_manifest(manifest, lambda o: o.update(version=2))
        return _archive(_member(b"bundle.json", v2), *members)
    if kind == "not-a-tar":
        return b"PK\x03\x04" + os.urandom(2000)
    if kind == "empty":
        return b""
    if kind == "manifest-not-first":
        return _archive(*members, head)
    if kind == "wrong-order":
        return _archive(head, *reversed(members))
    if kind == "missing-member":
        return _archive(head, *members[:-1])
    if kind == "trailing-data":
        return good + b"x"
    raise AssertionError(kind)


HOSTILE = {
    "truncated": "cut short",
    "flipped-manifest": "bundle.json",
    "extra-member": "'notes.txt'",
    "dot-dot": "climbs out",
    "absolute": "absolute path",
    "symlink": "symbolic link",
    "directory": "directory",
    "hardlink": "hard link",
    "device": "character device",
    "pax-header": "pax extended header",
    "duplicate-id": "same item id twice",
    "huge-size": "declares 8589934591 bytes, more than the",
    "huge-manifest": "'bundle.json' declares 8589934591 bytes, more than the 33554432 allowed",
    "unknown-version": "version 2 is not supported",
    "not-a-tar": "not a ustar tar archive",
    "empty": "the file is empty",
    "manifest-not-first": "must start with bundle.json",
    "wrong-order": "not in its order",
    "missing-member": "ends before the envelope",
    "trailing-data": "after the end of the archive",
}


@pytest.fixture()
def good_bundle(
    sqlite_app: Flask, team_keys: Team, tmp_path: Path
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    client = sqlite_app.test_client()
    for country in ("Ruritania", "Utopia"):
        submit_browser(client, team_keys, {**BROWSER_FIELDS, "country": country})
    path = tmp_path / "good.tar"
    export(sqlite_app, path)
    manifest, envs = _parts(path)
    return path.read_bytes(), manifest, envs


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_or_damaged_bundle_is_refused_whole(
    kind: str,
    good_bundle: tuple[bytes, bytes, list[tuple[str, bytes]]],
    desk: Desk,
    desk_keys: tuple[DeskKey, ...],
    tmp_path: Path,
) -> None:
    path = tmp_path / "hostile.tar"
    path.write_bytes(_hostile(kind, *good_bundle))
    store = tmp_path / "store"
    result = desk(*import_args(store, path, desk_keys))
    assert_error(result, HOSTILE[kind])
    assert not (store / STORE_FILE).exists()  # nothing imported, nothing created
    assert not (tmp_path / "evil.env").exists()


def test_a_flipped_byte_in_one_envelope_refuses_that_item_only(
    good_bundle: tuple[bytes, bytes, list[tuple[str, bytes]]],
    desk: Desk,
    desk_keys: tuple[DeskKey, ...],
    tmp_path: Path,
) -> None:
    good, manifest, envs = good_bundle
    first = bytearray(envs[0][1])
    first[-5] ^= 0x40
    members = [_member(envs[0][0].encode(), bytes(first)), _member(envs[1][0].encode(), envs[1][1])]
    path = tmp_path / "flipped.tar"
    path.write_bytes(_archive(_member(b"bundle.json", manifest), *members))
    store = tmp_path / "store"
    result = desk(*import_args(store, path, desk_keys))
    bad_id = envs[0][0].split("/")[1].removesuffix(".env")
    assert_error(result, f"the envelope of item {bad_id} does not match its SHA-256")
    stored = items_by_id(store)
    assert stored[bad_id].status == "failed" and stored[bad_id].error == "DigestMismatch"
    assert stored[bad_id].document is None
    others = [i for i in stored.values() if i.id != bad_id]
    assert [i.status for i in others] == ["opened"]
    # The good bundle, imported next, opens the refused item too.
    path.write_bytes(good)
    assert desk(*import_args(store, path, desk_keys)).code == 0
    assert {i.status for i in items_by_id(store).values()} == {"opened"}


def _store_direct(app: Flask, data: bytes, reply: bytes, sealed_by: SealedBy) -> str:
    state = app.extensions["portal.source"]
    digest = os.urandom(32)
    stored = replykey.mask(state.mask_key, digest, reply)
    incoming = storage.Incoming(data, envelope.parse_header(data), digest, stored, sealed_by)
    return storage.store(state.db, state.config.data_dir, incoming, DAY)


def test_an_item_sealed_to_another_key_is_reported_and_the_rest_imported(
    sqlite_app: Flask,
    team_keys: Team,
    desk: Desk,
    desk_keys: tuple[DeskKey, ...],
    tmp_path: Path,
) -> None:
    client = sqlite_app.test_client()
    submit_browser(client, team_keys, BROWSER_FIELDS)
    key = reply_key()
    document = report.document(BROWSER_FIELDS, key, "browser")
    foreign = envelope.seal(json.dumps(document).encode(), [team_keys.outsider], SealPath.BROWSER)
    foreign_id = _store_direct(sqlite_app, foreign, key, SealedBy.BROWSER)
    export(sqlite_app, tmp_path / "b.tar")
    store = tmp_path / "store"
    result = desk(*import_args(store, tmp_path / "b.tar", desk_keys))
    assert_error(result, f"item {foreign_id} was not sealed to any secret key given")
    assert "1 items imported (1 new cases), 0 already in the store, 1 failed" in result.err
    stored = items_by_id(store)
    assert stored[foreign_id].status == "failed"
    assert stored[foreign_id].error == "NoMatchingKey"
    assert sorted(i.status for i in stored.values()) == ["failed", "opened"]
    # With Desk C's key as well, the failed item opens on the next import.
    again = desk("import", "--store", store, *key_args(desk_keys), *key_args(desk_keys, 2),
                 tmp_path / "b.tar")  # fmt: skip
    assert again.code == 0, again.err
    assert items_by_id(store)[foreign_id].status == "opened"


def test_a_swapped_reply_key_is_detected_and_never_trusted(
    sqlite_app: Flask,
    team_keys: Team,
    desk: Desk,
    desk_keys: tuple[DeskKey, ...],
    tmp_path: Path,
) -> None:
    client = sqlite_app.test_client()
    submit_browser(client, team_keys, BROWSER_FIELDS, swap=True)
    submit_browser(client, team_keys, BROWSER_FIELDS)
    export(sqlite_app, tmp_path / "s.tar")
    store = tmp_path / "store"
    result = desk(*import_args(store, tmp_path / "s.tar", desk_keys))
    assert_error(result, "THE SERVER'S REPLY KEY DOES NOT MATCH", "Do not reply to this case")
    stored = items_by_id(store).values()
    assert sorted((i.status, i.error) for i in stored) == [
        ("failed", "ReplyKeySwapped"),
        ("opened", None),
    ]
    assert len(store_rows(store)["cases"]) == 1


def test_content_outside_the_form_is_stored_flagged_and_shown(
    sqlite_app: Flask,
    team_keys: Team,
    desk: Desk,
    desk_keys: tuple[DeskKey, ...],
    tmp_path: Path,
) -> None:
    client = sqlite_app.test_client()
    odd = {**BROWSER_FIELDS, "acts": ["detention", "beheading"], "favourite_colour": "\x1b[31mred"}
    del odd["consent_reply"]
    submit_browser(client, team_keys, odd)
    export(sqlite_app, tmp_path / "o.tar")
    store = tmp_path / "store"
    result = desk(*import_args(store, tmp_path / "o.tar", desk_keys))
    assert_error(
        result,
        "content outside the form",
        "unknown field 'favourite_colour'",
        "'beheading'",
        "consent_reply: required but missing",
    )
    (row,) = items_by_id(store).values()
    assert row.status == "opened"
    assert json.loads(row.document or "")["fields"] == odd  # kept whole
    shown = desk("show", "--store", store, row.thread_id)
    assert "WARNING: content outside the form" in shown.out
    assert "'beheading' (not a choice)" in shown.out
    assert "\x1b" not in shown.out and "\\u001b[31mred" in shown.out
    again = desk(*import_args(store, tmp_path / "o.tar", desk_keys))
    assert_error(again, "imported before and is flagged")


def test_an_oversized_item_is_refused_with_a_clear_message(
    sqlite_app: Flask,
    team_keys: Team,
    desk: Desk,
    desk_keys: tuple[DeskKey, ...],
    tmp_path: Path,
) -> None:
    key = reply_key()
    document = report.document({"account": "x" * (2 << 20)}, key, "browser")
    big = envelope.seal(json.dumps(document).encode(), team_keys.public_keys, SealPath.BROWSER)
    big_id = _store_direct(sqlite_app, big, key, SealedBy.BROWSER)
    export(sqlite_app, tmp_path / "big.tar")
    result = desk(*import_args(tmp_path / "store", tmp_path / "big.tar", desk_keys))
    assert_error(result, f"item {big_id} is", "attachments")
    assert items_by_id(tmp_path / "store")[big_id].error == "TooLarge"


def test_a_server_sealed_document_claiming_the_browser_is_refused(
    sqlite_app: Flask,
    team_keys: Team,
    desk: Desk,
    desk_keys: tuple[DeskKey, ...],
    tmp_path: Path,
) -> None:
    key = receipt.reply_public_key(receipt.generate())
    document = report.document({"account": "x"}, key, "browser")
    data = envelope.seal(json.dumps(document).encode(), team_keys.public_keys, SealPath.SERVER)
    item_id = _store_direct(sqlite_app, data, key, SealedBy.SERVER)
    export(sqlite_app, tmp_path / "m.tar")
    result = desk(*import_args(tmp_path / "store", tmp_path / "m.tar", desk_keys))
    assert_error(result, "sealed by 'browser' but its envelope says 'server'")
    assert items_by_id(tmp_path / "store")[item_id].error == "SealedByMismatch"


def test_the_import_path_loads_no_web_framework(
    exported: Path, desk_keys: tuple[DeskKey, ...], tmp_path: Path
) -> None:
    key = desk_keys[0]
    store = tmp_path / "store"
    script = f"""
import sys
from portal.desk.cli import main
args = ["--secret-key", {str(key.secret_file)!r}, "--passphrase-file", {str(key.passphrase_file)!r}]
assert main(["import", "--store", {str(store)!r}, *args, {str(exported)!r}]) == 0
assert main(["cases", "--store", {str(store)!r}]) == 0
print(",".join(sorted({{m.split(".")[0] for m in sys.modules}})), file=sys.stderr)
print(",".join(sorted(m for m in sys.modules if m.startswith("portal."))), file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    *_, top, ours = proc.stderr.decode().strip().splitlines()
    loaded = set(top.split(","))
    assert "sqlalchemy" in loaded  # the case store
    assert not loaded & {"flask", "werkzeug", "jinja2", "flask_wtf", "alembic"}
    assert not set(ours.split(",")) & {"portal.models", "portal.db", "portal.storage"}


def test_the_usage_text_shows_the_import_example(desk: Desk) -> None:
    result = desk("--help")
    assert "portal-desk import --store DIR --secret-key FILE" in result.out
    assert "$ portal-desk import --store cases" in result.out


def test_a_planted_report_with_odd_types_is_listed_not_a_crash(
    sqlite_app: Flask,
    team_keys: Team,
    desk: Desk,
    desk_keys: tuple[DeskKey, ...],
    tmp_path: Path,
) -> None:
    client = sqlite_app.test_client()
    odd = {**BROWSER_FIELDS, "acts": [7, None, {"x": 1}, "threats"], "country": ["\x1b[2J"]}
    submit_browser(client, team_keys, odd)
    export(sqlite_app, tmp_path / "o.tar")
    store = tmp_path / "store"
    desk(*import_args(store, tmp_path / "o.tar", desk_keys))
    listed = desk("cases", "--store", store)
    assert listed.code == 0, listed.err
    assert "threats" in listed.out and "\x1b" not in listed.out
    assert stat.S_IMODE((store / "cases.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
