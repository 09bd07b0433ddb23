"""Storage: an envelope is on disk complete with its rows, or nothing is; SQLite and PostgreSQL."""

from __future__ import annotations

import calendar
import datetime as dt
import io
import os
import stat
from pathlib import Path

import pytest
from source_fixtures import Team, browser_envelope, clear_reply_key, masked, reply_key, rows
from sqlalchemy.exc import OperationalError

from portal import envelope, storage
from portal.db import Database
from portal.models import SealedBy

DAY = dt.date(2026, 3, 14)


@pytest.fixture
def db(database_url: str):
    database = Database(database_url)
    yield database
    database.dispose()


def incoming(
    team: Team, digest: bytes = b"\x01" * 32, clear: bytes | None = None
) -> storage.Incoming:
    sealed = browser_envelope(team)
    header = envelope.inspect(io.BytesIO(sealed))
    stored = masked(digest, clear or reply_key())
    return storage.Incoming(sealed, header, digest, stored, SealedBy.BROWSER)


def listing(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / storage.ENVELOPE_DIR).iterdir())


def test_store_writes_the_file_then_exactly_the_allowed_rows(db, database_url, data_dir,
                                                             team_keys):  # fmt: skip
    clear = reply_key()
    item = incoming(team_keys, clear=clear)
    submission_id = storage.store(db, data_dir, item, DAY)
    path = storage.envelope_path(data_dir, submission_id)
    midnight = calendar.timegm(DAY.timetuple())  # the file keeps the day, not the time
    assert path.stat().st_mtime == midnight and path.stat().st_atime == midnight
    assert path.read_bytes() == item.envelope
    assert listing(data_dir) == [path.name]  # no temporary file left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / storage.ENVELOPE_DIR).stat().st_mode) == 0o700
    found = rows(database_url)
    (thread,) = found["threads"]
    (submission,) = found["submissions"]
    assert set(thread) == {"id", "lookup_digest", "reply_public_key", "created_on"}
    assert bytes(thread["lookup_digest"]) == item.lookup_digest
    # Stored as given, masked: never the clear key, which a receipt alone gives.
    assert bytes(thread["reply_public_key"]) == item.masked_reply_key != clear
    assert clear_reply_key(thread) == clear
    assert thread["created_on"] == DAY and len(thread["id"]) == 32
    assert submission == {
        "id": submission_id,
        "thread_id": thread["id"],
        "received_on": DAY,
        "sealed_by": SealedBy.BROWSER,
        "padded_size": item.header.padded_size,
        "envelope_size": len(item.envelope),
        "recipient_key_ids": " ".join(k.hex() for k in item.header.key_ids),
        "exported_on": None,
    }


def test_ids_are_random_and_distinct(db, data_dir, team_keys):
    first = storage.store(db, data_dir, incoming(team_keys, b"\x01" * 32), DAY)
    second = storage.store(db, data_dir, incoming(team_keys, b"\x02" * 32), DAY)
    assert first != second and len(first) == len(second) == 32
    int(first, 16), int(second, 16)


def test_a_lookup_digest_in_use_stores_nothing(db, database_url, data_dir, team_keys):
    storage.store(db, data_dir, incoming(team_keys), DAY)
    before = listing(data_dir), rows(database_url)
    with pytest.raises(storage.LookupTokenTaken):
        storage.store(db, data_dir, incoming(team_keys), DAY)
    assert (listing(data_dir), rows(database_url)) == before


def test_a_race_on_the_lookup_digest_removes_the_file(db, database_url, data_dir, team_keys,
                                                      monkeypatch):  # fmt: skip
    storage.store(db, data_dir, incoming(team_keys), DAY)
    before = listing(data_dir), rows(database_url)
    # The other request's row lands between our check and our commit.
    checks = iter([False, True])
    monkeypatch.setattr(storage, "lookup_taken", lambda *_: next(checks))
    with pytest.raises(storage.LookupTokenTaken):
        storage.store(db, data_dir, incoming(team_keys), DAY)
    assert (listing(data_dir), rows(database_url)) == before


def test_a_failed_commit_removes_the_file(db, database_url, data_dir, team_keys, monkeypatch):
    storage.prepare(data_dir)

    def fail(*_args: object) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(storage, "commit_rows", fail)
    with pytest.raises(storage.StorageError, match="cannot commit") as err:
        storage.store(db, data_dir, incoming(team_keys), DAY)
    assert not isinstance(err.value, storage.LookupTokenTaken)
    assert listing(data_dir) == []
    assert rows(database_url) == {"threads": [], "submissions": []}


def test_an_interrupted_commit_removes_the_file_and_propagates(db, data_dir, team_keys,
                                                               monkeypatch):  # fmt: skip
    storage.prepare(data_dir)

    def interrupt(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(storage, "commit_rows", interrupt)
    with pytest.raises(KeyboardInterrupt):
        storage.store(db, data_dir, incoming(team_keys), DAY)
    assert listing(data_dir) == []


def test_an_unwritable_envelope_directory_stores_nothing(db, database_url, data_dir, team_keys):
    (data_dir / storage.ENVELOPE_DIR).write_bytes(b"")  # a file where the directory should be
    with pytest.raises(storage.StorageError, match="cannot write the envelope file"):
        storage.store(db, data_dir, incoming(team_keys), DAY)
    assert rows(database_url) == {"threads": [], "submissions": []}


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        storage.write_durably(tmp_path / "x.env", b"ciphertext", DAY)
    assert list(tmp_path.iterdir()) == []


def test_write_durably_never_replaces_a_file(tmp_path):
    target = tmp_path / "x.env"
    target.write_bytes(b"first")
    with pytest.raises(FileExistsError):
        storage.write_durably(target, b"second", DAY)
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["x.env"]


def test_the_database_refuses_an_unknown_sealing_path(db, data_dir, team_keys):
    item = incoming(team_keys)
    thread, submission = storage._rows(item, storage.new_id(), DAY)
    submission.sealed_by = "desk"  # type: ignore[assignment]
    with pytest.raises(Exception), db.session() as session:  # noqa: B017
        session.add_all([thread, submission])
        session.commit()


def test_sqlite_keeps_rows_in_random_id_order_not_arrival_order(sqlite_url, data_dir, team_keys):
    db = Database(sqlite_url)
    try:
        with db.engine.connect() as conn:
            schema = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type='table'")
            # Staff accounts say nothing about submissions; their order may be their creation's.
            tables = [sql for name, sql in schema if name in {"threads", "submissions"}]
        assert len(tables) == 2 and all(t.rstrip().endswith("WITHOUT ROWID") for t in tables)
        stored = [storage.store(db, data_dir, incoming(team_keys, bytes([i]) * 32), DAY)
                  for i in range(8)]  # fmt: skip
        with db.engine.connect() as conn:
            listed = [row[0] for row in conn.exec_driver_sql("SELECT * FROM submissions")]
        assert listed == sorted(stored)
    finally:
        db.dispose()


def test_a_failed_commit_whose_file_cannot_be_removed_is_still_a_storage_error(
    db, database_url, data_dir, team_keys, monkeypatch, caplog
):
    storage.prepare(data_dir)

    def fail(*_args: object) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    def cannot_remove(_path: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(storage, "commit_rows", fail)
    monkeypatch.setattr(storage, "remove_durably", cannot_remove)
    with pytest.raises(storage.StorageError, match="cannot commit"):
        storage.store(db, data_dir, incoming(team_keys), DAY)
    assert "could not be removed" in caplog.text
    assert rows(database_url) == {"threads": [], "submissions": []}


def test_an_integrity_error_with_an_unreadable_database_is_a_storage_error(
    db, database_url, data_dir, team_keys, monkeypatch
):
    from sqlalchemy.exc import IntegrityError

    storage.prepare(data_dir)
    checks = iter([False])

    def lookup(*_args: object) -> bool:
        try:
            return next(checks)
        except StopIteration:
            raise OperationalError("SELECT", {}, Exception("database is locked")) from None

    def clash(*_args: object) -> None:
        raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr(storage, "lookup_taken", lookup)
    monkeypatch.setattr(storage, "commit_rows", clash)
    with pytest.raises(storage.StorageError) as err:
        storage.store(db, data_dir, incoming(team_keys), DAY)
    assert not isinstance(err.value, storage.LookupTokenTaken)
    assert listing(data_dir) == []


def test_sqlite_zeroes_deleted_rows(sqlite_url):
    database = Database(sqlite_url)
    try:
        with database.session() as session:
            from sqlalchemy import text

            assert session.execute(text("PRAGMA secure_delete")).scalar() == 1
    finally:
        database.dispose()


# Attachments: staged envelopes moved in with the report, all in one transaction ----------------


def staged(team: Team, folder: Path, name: str) -> storage.Staged:
    from uploads_helpers import attachment_envelope

    body, _ = attachment_envelope(team, os.urandom(5000))
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / name
    path.write_bytes(body)
    return storage.Staged(path, envelope.parse_header(body), SealedBy.BROWSER)


def test_attachments_are_moved_in_with_the_report(db, database_url, data_dir, team_keys):
    items = [staged(team_keys, data_dir / "uploads", f"{i}.part") for i in range(2)]
    contents = [i.source.read_bytes() for i in items]
    report_id = storage.store(db, data_dir, incoming(team_keys), DAY, items)
    found = rows(database_url)
    (thread,) = found["threads"]
    assert len(found["submissions"]) == 3
    assert {s["thread_id"] for s in found["submissions"]} == {thread["id"]}
    midnight = calendar.timegm(DAY.timetuple())
    others = [s for s in found["submissions"] if s["id"] != report_id]
    stored = sorted(storage.envelope_path(data_dir, s["id"]).read_bytes() for s in others)
    assert stored == sorted(contents)
    for row in others:
        path = storage.envelope_path(data_dir, row["id"])
        assert path.stat().st_mtime == midnight and row["envelope_size"] == path.stat().st_size
    assert all(not i.source.exists() for i in items)


def test_a_failed_commit_puts_every_attachment_back(db, database_url, data_dir, team_keys,
                                                    monkeypatch):  # fmt: skip
    items = [staged(team_keys, data_dir / "uploads", f"{i}.part") for i in range(3)]
    contents = [i.source.read_bytes() for i in items]

    def fail(*_args: object) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(storage, "commit_rows", fail)
    with pytest.raises(storage.StorageError):
        storage.store(db, data_dir, incoming(team_keys), DAY, items)
    assert [i.source.read_bytes() for i in items] == contents
    assert listing(data_dir) == []
    assert rows(database_url) == {"threads": [], "submissions": []}


def test_a_missing_attachment_file_stores_nothing(db, database_url, data_dir, team_keys):
    items = [staged(team_keys, data_dir / "uploads", f"{i}.part") for i in range(2)]
    items[1].source.unlink()
    with pytest.raises(storage.UploadsGone):
        storage.store(db, data_dir, incoming(team_keys), DAY, items)
    assert items[0].source.exists()  # moved back
    assert listing(data_dir) == []
    assert rows(database_url) == {"threads": [], "submissions": []}


def test_an_upload_row_gone_before_the_commit_stores_nothing(db, database_url, data_dir,
                                                             team_keys):  # fmt: skip
    item = staged(team_keys, data_dir / "uploads", "x.part")
    item = storage.Staged(item.source, item.header, item.sealed_by, upload_id="f" * 32)
    with pytest.raises(storage.UploadsGone):
        storage.store(db, data_dir, incoming(team_keys), DAY, [item])
    assert item.source.exists() and listing(data_dir) == []
    assert rows(database_url) == {"threads": [], "submissions": []}
