"""`portal backup` and `portal restore`: rows and envelopes round-trip; damage restores nothing."""

from __future__ import annotations

import io
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from source_fixtures import SECRET, browser_envelope, make_config, upload
from sqlalchemy import create_engine, select

from portal import backup, cli, envelope, restore, staffauth, storage
from portal.db import Database
from portal.models import Base, DeletedReply, Reply


def all_rows(url: str) -> dict[str, list[dict[str, object]]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: sorted((dict(r._mapping) for r in conn.execute(select(t))), key=repr)
                for t in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def files_under(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("portal.sqlite3")
    }


def load(make_app, url, team_keys, data_dir):
    """A portal with three envelopes, a stored reply, a deleted reply's id and a staff account."""
    app = make_app(url)
    client = app.test_client()
    for _ in range(3):
        assert upload(client, browser_envelope(team_keys)).status_code == 201
    db = app.extensions["portal.source"].db
    with db.session() as session:
        thread = session.scalars(select(Base.metadata.tables["threads"].c.id)).first()
    assert thread is not None
    reply_id, sealed = (
        storage.new_id(),
        envelope.seal(b"a reply", list(team_keys.public_keys), envelope.SealPath.DESK),
    )
    path = storage.reply_path(data_dir, reply_id)
    path.parent.mkdir(mode=0o700)
    import datetime as dt

    storage.write_durably(path, sealed, dt.date(2026, 11, 23))
    with db.session() as session:
        session.add(Reply(id=reply_id, thread_id=thread, received_on=dt.date(2026, 11, 23),
                          size=len(sealed)))  # fmt: skip
        session.add(DeletedReply(id=storage.new_id()))  # a reply read and deleted before
        session.commit()
    staffauth.add(db, SECRET.encode(), "amina")
    return make_config(team_keys, data_dir, url)


@pytest.fixture
def loaded(make_app, database_url, team_keys, data_dir):
    """A loaded portal on SQLite, then on PostgreSQL."""
    return load(make_app, database_url, team_keys, data_dir)


@pytest.fixture
def loaded_sqlite(make_app, sqlite_url, team_keys, data_dir):
    """A loaded portal on SQLite, for the checks made before any database is touched."""
    return load(make_app, sqlite_url, team_keys, data_dir)


@pytest.fixture
def empty_sqlite(tmp_path, team_keys):
    data = tmp_path / "restored"
    return make_config(team_keys, data, f"sqlite:///{data / 'portal.sqlite3'}")


@pytest.fixture
def empty_target(request, tmp_path, database_url, team_keys):
    """An empty data directory and an empty database of the same kind (no tables at all)."""
    data = tmp_path / "restored"
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{data / 'portal.sqlite3'}"
    else:
        server = request.getfixturevalue("postgres_server")
        name = server.create_database()
        url = server.url(name)
        request.addfinalizer(lambda: server.drop_database(name))
    return make_config(team_keys, data, url)


def test_backup_then_restore_round_trips_every_row_and_envelope(loaded, empty_target, tmp_path,
                                                                 team_keys):  # fmt: skip
    out = tmp_path / "portal.backup"
    # threads, submissions, reply, deleted reply, staff
    assert backup.create(loaded, out) == (3 + 3 + 1 + 1 + 1, 4)
    assert out.stat().st_mode & 0o777 == 0o600
    assert restore.restore(empty_target, out) == (9, 4)
    assert all_rows(empty_target.database_url) == all_rows(loaded.database_url)
    assert files_under(empty_target.data_dir) == files_under(loaded.data_dir)
    for name, data in files_under(empty_target.data_dir).items():
        if name.startswith("envelopes/"):
            opened = envelope.open_bytes(data, [team_keys.identities[0]])
            assert b'"account"' in opened
    # The restored portal works: a new staff account gets a fresh id (PostgreSQL's sequence).
    staffauth.add(Database(empty_target.database_url), SECRET.encode(), "bilal")


def test_the_backup_holds_no_time_of_day_and_is_repeatable(loaded_sqlite, tmp_path):
    first, second = tmp_path / "one.backup", tmp_path / "two.backup"
    backup.create(loaded_sqlite, first)
    backup.create(loaded_sqlite, second)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        assert {m.mtime for m in tar.getmembers()} == {0}
        assert {m.uname for m in tar.getmembers()} == {""}
        names = tar.getnames()
    assert names[:2] == [backup.MANIFEST, backup.MAC]
    assert not any("sqlite" in n for n in names)


def test_the_backup_refuses_to_overwrite(loaded_sqlite, tmp_path):
    out = tmp_path / "exists"
    out.write_bytes(b"keep me")
    with pytest.raises(backup.BackupError, match="exists"):
        backup.create(loaded_sqlite, out)
    assert out.read_bytes() == b"keep me"


def test_a_row_whose_file_vanished_fails_the_backup(loaded, tmp_path):
    victim = next((loaded.data_dir / storage.ENVELOPE_DIR).iterdir())
    victim.unlink()
    with pytest.raises(backup.BackupError, match="has no file") as caught:
        backup.create(loaded, tmp_path / "out")
    assert "run it again" in caught.value.hint
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".backup-*"))


def assert_nothing_restored(target) -> None:
    assert files_under(target.data_dir) == {} if target.data_dir.exists() else True
    if (
        target.database_url.startswith("sqlite")
        and not Path(target.database_url.removeprefix("sqlite:///")).exists()
    ):
        return
    rows = all_rows_if_any(target.database_url)
    assert all(not r for r in rows.values())


def all_rows_if_any(url: str) -> dict[str, list[object]]:
    engine = create_engine(url)
    try:
        from sqlalchemy import inspect

        names = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    return {k: v for k, v in all_rows(url).items()} if "threads" in names else {}


def damaged(original: bytes, where: str) -> bytes:
    data = bytearray(original)
    if where == "manifest":
        at = data.index(b'"format"')
        data[at + 1] ^= 1
    elif where == "table":
        at = data.index(b'"lookup_digest"')
        data[at + 20] ^= 1
    elif where == "envelope":
        at = data.index(b"portal-backup/files/envelopes/") + 1024
        data[at] ^= 1
    elif where == "last-file":
        with tarfile.open(fileobj=io.BytesIO(original)) as tar:
            last = tar.getmembers()[-1]
        data[last.offset_data + last.size // 2] ^= 1
    return bytes(data)


@pytest.mark.parametrize("where", ["manifest", "table", "envelope", "last-file"])
def test_a_tampered_backup_is_refused_and_nothing_restored(
    loaded_sqlite, empty_sqlite, tmp_path, where
):
    out = tmp_path / "portal.backup"
    backup.create(loaded_sqlite, out)
    bad = tmp_path / "bad.backup"
    bad.write_bytes(damaged(out.read_bytes(), where))
    assert bad.read_bytes() != out.read_bytes()
    with pytest.raises(backup.BackupError, match="refused"):
        restore.restore(empty_sqlite, bad)
    assert_nothing_restored(empty_sqlite)


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.99])
def test_a_truncated_backup_is_refused_and_nothing_restored(loaded_sqlite, empty_sqlite, tmp_path,
                                                            fraction):  # fmt: skip
    out = tmp_path / "portal.backup"
    backup.create(loaded_sqlite, out)
    data = out.read_bytes()
    cut = tmp_path / "cut.backup"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(backup.BackupError, match="refused"):
        restore.restore(empty_sqlite, cut)
    assert_nothing_restored(empty_sqlite)


def test_a_backup_cut_only_in_its_final_padding_is_refused(loaded_sqlite, empty_sqlite, tmp_path):
    out = tmp_path / "portal.backup"
    backup.create(loaded_sqlite, out)
    cut = tmp_path / "cut.backup"
    cut.write_bytes(out.read_bytes()[:-1])  # a zero byte of the padding: every member intact
    with pytest.raises(backup.BackupError, match="nothing was restored: it is cut short"):
        restore.restore(empty_sqlite, cut)
    assert_nothing_restored(empty_sqlite)


def test_a_backup_with_an_extra_member_is_refused(loaded_sqlite, empty_sqlite, tmp_path):
    out = tmp_path / "portal.backup"
    backup.create(loaded_sqlite, out)
    extended = tmp_path / "extended.backup"
    with tarfile.open(out) as src, tarfile.open(extended, "w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member))
        planted = tarfile.TarInfo("portal-backup/files/envelopes/planted.env")
        dst.addfile(planted, None)
    with pytest.raises(backup.BackupError, match="does not list"):
        restore.restore(empty_sqlite, extended)
    assert_nothing_restored(empty_sqlite)


def test_another_secret_key_cannot_restore(loaded_sqlite, empty_sqlite, tmp_path):
    out = tmp_path / "portal.backup"
    backup.create(loaded_sqlite, out)
    other = replace(empty_sqlite, secret_key=b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFG")
    with pytest.raises(backup.BackupError, match="not authentic"):
        restore.restore(other, out)
    assert_nothing_restored(empty_sqlite)


def test_restore_refuses_a_portal_that_is_not_empty(loaded, empty_target, tmp_path):
    out = tmp_path / "portal.backup"
    backup.create(loaded, out)
    with pytest.raises(backup.BackupError, match="data directory is not empty"):
        restore.restore(loaded, out)
    empty_data = replace(loaded, data_dir=tmp_path / "fresh")
    if loaded.database_url.startswith("sqlite"):
        return  # its database lives in the data directory: covered above
    with pytest.raises(backup.BackupError, match="database is not empty"):
        restore.restore(empty_data, out)
    assert not list((tmp_path / "fresh").rglob("*.env"))


def test_the_commands_say_what_they_did_and_refuse_with_a_hint(loaded, empty_target, tmp_path,
                                                               monkeypatch, capsys):  # fmt: skip
    def use(cfg) -> None:
        monkeypatch.setenv("PORTAL_SECRET_KEY", SECRET)
        monkeypatch.setenv("PORTAL_DATA_DIR", str(cfg.data_dir))
        monkeypatch.setenv("DATABASE_URL", cfg.database_url)
        monkeypatch.setenv("PORTAL_KEYS", str(cfg.keys_manifest))

    out = tmp_path / "cli.backup"
    use(loaded)
    assert cli.main(["backup", "-o", str(out)]) == 0
    assert "9 row(s), 4 file(s)" in capsys.readouterr().out
    assert cli.main(["restore", str(out)]) == 1
    err = capsys.readouterr().err
    assert "portal: error: the data directory is not empty" in err
    assert "portal: hint: Restore into a new, empty one." in err
    use(empty_target)
    assert cli.main(["restore", str(out)]) == 0
    assert "restored 9 row(s) and 4 file(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "path", ["files/../outside.env", "files/envelopes/../../x", "files/.hidden", "/etc/passwd"]
)
def test_a_manifest_naming_a_path_outside_the_data_directory_is_refused(
    loaded_sqlite, empty_sqlite, tmp_path, path
):
    """Even with a valid HMAC (whoever holds the secret), no member lands outside the store."""
    import hashlib
    import hmac
    import json

    out = tmp_path / "portal.backup"
    backup.create(loaded_sqlite, out)
    with tarfile.open(out) as tar:
        manifest = json.loads(tar.extractfile(backup.MANIFEST).read())  # type: ignore[union-attr]
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()[2:]]  # type: ignore[union-attr]
    victim = next(m for m in manifest["members"] if m["path"].startswith("files/"))
    renamed = victim["path"]
    victim["path"] = path
    data = json.dumps(manifest).encode()
    mac = hmac.new(backup.mac_key(SECRET.encode()), data, hashlib.sha256).hexdigest().encode()
    forged = tmp_path / "forged.backup"
    with tarfile.open(forged, "w") as tar:
        for name, content in ((backup.MANIFEST, data), (backup.MAC, mac)):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for member, content in members:
            if member.name.endswith(renamed):
                member.name = f"{backup.ROOT}/{path}"
            tar.addfile(member, io.BytesIO(content))
    with pytest.raises(backup.BackupError, match="outside the data directory"):
        restore.restore(empty_sqlite, forged)
    assert not (tmp_path / "outside.env").exists()
    assert_nothing_restored(empty_sqlite)
