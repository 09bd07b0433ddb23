"""Alembic: head matches the models, every revision goes up and down; SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pg import PostgresServer
from sqlalchemy import inspect, text

from portal import cli, migrate, receipt, replykey
from portal.config import ConfigError
from portal.db import make_engine
from portal.models import Base

# Exactly what the brief allows the server to keep, and nothing more (staff accounts hold
# only what logging in needs).
ALLOWED_COLUMNS = {
    "threads": {"id", "lookup_digest", "reply_public_key", "created_on"},
    "submissions": {
        "id",
        "thread_id",
        "received_on",
        "sealed_by",
        "padded_size",
        "envelope_size",
        "recipient_key_ids",
        "exported_on",
    },
    "replies": {"id", "thread_id", "received_on", "size", "read_on", "signature"},
    "deleted_replies": {"id"},
    "staff_users": {
        "id",
        "name",
        "state",
        "password_hash",
        "totp_secret",
        "totp_last_step",
        "enrolment_digest",
        "failed_attempts",
        "locked_until",
        "session_digest",
    },
    "uploads": {"id", "token_digest", "length", "committed_offset", "complete", "expires_at"},
    "alembic_version": {"version_num"},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


def differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def columns(url: str) -> dict[str, set[str]]:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}
    finally:
        engine.dispose()


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def test_upgrade_to_head_matches_the_models(empty_url):
    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == migrate.head()
    assert differences(empty_url) == []


def test_the_schema_holds_only_what_the_brief_allows(empty_url):
    migrate.upgrade(empty_url)
    assert columns(empty_url) == ALLOWED_COLUMNS


def test_every_revision_goes_up_and_down(empty_url):
    steps = revisions()
    assert steps and steps[-1] == migrate.head()
    for revision in steps:
        migrate.upgrade(empty_url, revision)
        assert migrate.current(empty_url) == revision
    for revision in reversed([None, *steps[:-1]]):
        migrate.downgrade(empty_url, revision or "base")
        assert migrate.current(empty_url) == revision
    assert set(columns(empty_url)) <= {"alembic_version"}
    migrate.upgrade(empty_url)
    assert differences(empty_url) == []


def test_upgrade_is_idempotent(empty_url):
    migrate.upgrade(empty_url)
    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == migrate.head()


def test_cli_db_upgrade_creates_the_data_directory_and_database(capsys, monkeypatch, tmp_path):
    data = tmp_path / "new" / "data"
    monkeypatch.setenv("PORTAL_DATA_DIR", str(data))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert cli.main(["db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert f"is at revision {migrate.head()}" in out
    assert (data / "portal.sqlite3").is_file()
    assert oct((data / "portal.sqlite3").stat().st_mode & 0o777) == oct(0o600)
    assert (data / "envelopes").is_dir()
    assert oct(data.stat().st_mode & 0o777) == oct(0o700)
    assert migrate.current(f"sqlite:///{data / 'portal.sqlite3'}") == migrate.head()


def test_cli_db_upgrade_on_postgresql_hides_the_password(capsys, monkeypatch, tmp_path,
                                                         postgres_server):  # fmt: skip
    name = postgres_server.create_database()
    try:
        url = postgres_server.url(name).replace("postgres@", "postgres:pw-never-shown@")
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "data"))
        assert cli.main(["db", "upgrade"]) == 0
        out = capsys.readouterr().out
        assert "pw-never-shown" not in out and "***" in out
        assert migrate.current(postgres_server.url(name)) == migrate.head()
    finally:
        postgres_server.drop_database(name)


def test_cli_db_upgrade_reports_an_unreachable_database(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:secretpw@127.0.0.1:1/none")
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["db", "upgrade"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("portal: error: cannot upgrade the database")
    assert "portal: hint: Check DATABASE_URL." in err
    assert "secretpw" not in err and "Traceback" not in err


# --- 0008: the reply public key at rest ---------------------------------------------------

SECRET = secrets.token_urlsafe(32)


def _add_thread(url: str, digest: bytes, key: bytes) -> None:
    """A thread row as a portal at revision 0007 wrote it: the reply key in clear."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO threads (id, lookup_digest, reply_public_key, created_on)"
                    " VALUES (:id, :digest, :key, :day)"
                ),
                {
                    "id": secrets.token_hex(16),
                    "digest": digest,
                    "key": key,
                    "day": dt.date(2026, 11, 23),
                },
            )
    finally:
        engine.dispose()


def _stored_keys(url: str) -> dict[bytes, bytes]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT lookup_digest, reply_public_key FROM threads"))
            return {bytes(digest): bytes(key) for digest, key in rows}
    finally:
        engine.dispose()


def _threads(url: str, count: int = 2, revision: str = "0007") -> dict[bytes, bytes]:
    """``count`` threads of real receipts at ``revision``; their lookup digests and clear keys."""
    migrate.upgrade(url, revision)
    digest_key = receipt.server_digest_key(SECRET.encode())
    clear = {}
    for _ in range(count):
        shown = receipt.generate()
        digest = receipt.lookup_digest(digest_key, receipt.lookup_token(shown))
        clear[digest] = receipt.reply_public_key(shown)
        _add_thread(url, digest, clear[digest])
    return clear


def test_0008_masks_existing_reply_keys_and_downgrade_unmasks_them(empty_url, monkeypatch):
    clear = _threads(empty_url)
    monkeypatch.setenv("PORTAL_SECRET_KEY", SECRET)
    migrate.upgrade(empty_url, "0008")
    stored = _stored_keys(empty_url)
    mask_key = replykey.mask_key(SECRET.encode())
    assert stored == {d: replykey.mask(mask_key, d, k) for d, k in clear.items()}
    for digest, key in clear.items():
        assert stored[digest] != key and len(stored[digest]) == 32
        assert replykey.unmask(mask_key, digest, stored[digest]) == key
    migrate.downgrade(empty_url, "0007")
    assert _stored_keys(empty_url) == clear


def test_0008_without_the_secret_refuses_and_changes_nothing(empty_url, monkeypatch):
    clear = _threads(empty_url)
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="PORTAL_SECRET_KEY is not set") as err:
        migrate.upgrade(empty_url)
    assert "PORTAL_SECRET_KEY" in err.value.hint
    assert migrate.current(empty_url) == "0007"
    assert _stored_keys(empty_url) == clear
    # Downgrading needs it as well, and refuses the same way.
    monkeypatch.setenv("PORTAL_SECRET_KEY", SECRET)
    migrate.upgrade(empty_url)
    masked = _stored_keys(empty_url)
    monkeypatch.delenv("PORTAL_SECRET_KEY")
    with pytest.raises(ConfigError, match="PORTAL_SECRET_KEY is not set"):
        migrate.downgrade(empty_url, "0007")
    assert migrate.current(empty_url) == "0008"
    assert _stored_keys(empty_url) == masked


def test_a_failed_upgrade_of_several_revisions_leaves_the_schema_as_it_was(empty_url,
                                                                          monkeypatch):  # fmt: skip
    """0007 creates a table, then 0008 fails: the whole upgrade is undone, on SQLite too."""
    clear = _threads(empty_url, 1, revision="0006")
    before = columns(empty_url)
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="PORTAL_SECRET_KEY is not set"):
        migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == "0006"
    assert columns(empty_url) == before and "deleted_replies" not in before
    assert _stored_keys(empty_url) == clear
    monkeypatch.setenv("PORTAL_SECRET_KEY", SECRET)
    migrate.upgrade(empty_url)  # and a second try, with the secret, goes through
    assert migrate.current(empty_url) == migrate.head()
    assert differences(empty_url) == []


def test_0008_refuses_a_weak_secret_and_changes_nothing(empty_url, monkeypatch):
    clear = _threads(empty_url, 1)
    monkeypatch.setenv("PORTAL_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="PORTAL_SECRET_KEY is too short"):
        migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == "0007"
    assert _stored_keys(empty_url) == clear


def test_0008_needs_no_secret_without_threads(empty_url, monkeypatch):
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == migrate.head()
    migrate.downgrade(empty_url, "0007")
    assert migrate.current(empty_url) == "0007"


def test_cli_db_upgrade_without_the_secret_says_so(capsys, monkeypatch, tmp_path):
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'portal.sqlite3'}"
    data.mkdir(mode=0o700)
    clear = _threads(url, 1)
    monkeypatch.setenv("PORTAL_DATA_DIR", str(data))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    assert cli.main(["db", "upgrade"]) == 1
    err = capsys.readouterr().err
    assert "PORTAL_SECRET_KEY is not set" in err and "Traceback" not in err
    assert migrate.current(url) == "0007"
    assert _stored_keys(url) == clear
