"""Deleting replies: once read and a return bundle applied since, and after a set time.

Rows go first (one transaction), then each file is overwritten with zeros,
fsynced and unlinked, as the purge does for envelopes. On SQLite and
PostgreSQL; the command ``portal replies expire`` runs the timed deletion.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path
from types import SimpleNamespace

import pytest
from nacl.public import PrivateKey
from source_fixtures import MASK_KEY, masked
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import envelope, purge, replykey, storage
from portal.cli import main
from portal.config import ConfigError, days_setting, from_env
from portal.db import Database
from portal.envelope import SealPath
from portal.models import Base, DeletedReply, Reply, SealedBy, Thread
from portal.returnbundle import Reply as ReturnedReply
from portal.returnbundle import ReturnBundle

TODAY = dt.date(2026, 11, 23)


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


def thread(db: Database, data_dir: Path, reply_key: bytes | None = None) -> str:
    body = envelope.seal(b"{}", [storage_key()], SealPath.BROWSER)
    digest = secrets.token_bytes(32)
    stored = masked(digest, reply_key or storage_key())
    incoming = storage.Incoming(body, envelope.parse_header(body), digest, stored,
                                SealedBy.BROWSER)  # fmt: skip
    storage.store(db, data_dir, incoming, TODAY)
    with db.session() as session:
        return session.scalars(select(Thread.id)).one()


def storage_key() -> bytes:
    return bytes(PrivateKey.generate().public_key)


def add_reply(db: Database, data_dir: Path, thread_id: str, received: dt.date,
              read: dt.date | None = None) -> str:  # fmt: skip
    reply_id = storage.new_id()
    path = storage.reply_path(data_dir, reply_id)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(b"sealed reply " + reply_id.encode())
    with db.session() as session:
        session.add(Reply(id=reply_id, thread_id=thread_id, received_on=received, size=45,
                          read_on=read))  # fmt: skip
        session.commit()
    return reply_id


def reply_ids(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Reply.id)))


def deleted_ids(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(DeletedReply.id)))


def everything(db: Database, data_dir: Path) -> tuple[dict[str, list[object]], dict[str, bytes]]:
    """Every row of every table, and every file under ``data_dir`` but the database."""
    with db.engine.connect() as conn:
        rows = {t.name: sorted(map(tuple, conn.execute(select(t))), key=repr)
                for t in Base.metadata.sorted_tables}  # fmt: skip
    files = {p.relative_to(data_dir).as_posix(): p.read_bytes() for p in data_dir.rglob("*")
             if p.is_file() and not p.name.startswith("portal.sqlite3")}  # fmt: skip
    return rows, files


def test_read_replies_are_deleted_and_their_files_shredded(db, data_dir):
    thread_id = thread(db, data_dir)
    read = add_reply(db, data_dir, thread_id, TODAY, read=TODAY)
    unread = add_reply(db, data_dir, thread_id, TODAY)
    # A second name for the read reply's file shows its bytes were overwritten before the unlink.
    witness = data_dir / "witness"
    os.link(storage.reply_path(data_dir, read), witness)
    assert purge.forget_read_replies(db, data_dir) == (read,)
    assert reply_ids(db) == {unread}
    assert not storage.reply_path(data_dir, read).exists()
    assert storage.reply_path(data_dir, unread).exists()
    assert witness.read_bytes() == bytes(len(witness.read_bytes())) and witness.stat().st_size
    assert purge.forget_read_replies(db, data_dir) == ()


def test_applying_a_return_bundle_deletes_the_replies_read_before(db, data_dir, monkeypatch):
    thread_id = thread(db, data_dir)
    read = add_reply(db, data_dir, thread_id, TODAY, read=TODAY)
    unread = add_reply(db, data_dir, thread_id, TODAY)
    # Only the hook is under test here: the bundle's own checks are tests/test_staff_return.py's.
    monkeypatch.setattr(purge, "check", lambda *args, **kwargs: purge.Applied((), ()))
    purge.apply(db, data_dir, SimpleNamespace(acknowledgements=(), replies=()), mask_key=MASK_KEY)
    assert reply_ids(db) == {unread}
    assert not storage.reply_path(data_dir, read).exists()


def test_replies_expire_after_the_retention_read_or_not(db, data_dir):
    thread_id = thread(db, data_dir)
    old = add_reply(db, data_dir, thread_id, TODAY - dt.timedelta(days=31))
    edge = add_reply(db, data_dir, thread_id, TODAY - dt.timedelta(days=30), read=TODAY)
    young = add_reply(db, data_dir, thread_id, TODAY - dt.timedelta(days=29))
    assert set(purge.expire_replies(db, data_dir, TODAY, 30)) == {old, edge}
    assert reply_ids(db) == {young}
    assert sorted(p.name for p in (data_dir / storage.REPLY_DIR).iterdir()) == [f"{young}.env"]
    with pytest.raises(ValueError, match="at least one day"):
        purge.expire_replies(db, data_dir, TODAY, 0)


def test_deleting_replies_remembers_their_ids_and_nothing_else(db, data_dir):
    thread_id = thread(db, data_dir)
    read = add_reply(db, data_dir, thread_id, TODAY, read=TODAY)
    old = add_reply(db, data_dir, thread_id, TODAY - dt.timedelta(days=40))
    young = add_reply(db, data_dir, thread_id, TODAY)
    assert purge.forget_read_replies(db, data_dir) == (read,)
    assert deleted_ids(db) == {read}
    assert purge.expire_replies(db, data_dir, TODAY, 30) == (old,)
    assert deleted_ids(db) == {read, old} and reply_ids(db) == {young}
    assert purge.expire_replies(db, data_dir, TODAY, 30) == ()
    assert deleted_ids(db) == {read, old}


def test_the_ids_are_added_in_the_transaction_that_deletes_the_rows(db, data_dir):
    thread_id = thread(db, data_dir)
    read = add_reply(db, data_dir, thread_id, TODAY, read=TODAY)
    with db.session() as session:  # an id remembered already makes the insert fail
        session.add(DeletedReply(id=read))
        session.commit()
    with pytest.raises(IntegrityError):
        purge.forget_read_replies(db, data_dir)
    assert reply_ids(db) == {read} and deleted_ids(db) == {read}
    assert storage.reply_path(data_dir, read).exists()  # rows first: the file is kept too


def test_replies_are_checked_against_the_unmasked_key(db, data_dir):
    """The stored key is masked: a server with another secret unmasks a wrong key and refuses
    the reply as not sealed to the submitter; with its own secret it stores it."""
    secret = PrivateKey.generate()
    thread_id = thread(db, data_dir, bytes(secret.public_key))
    sealed = envelope.seal(b"{}", [bytes(secret.public_key)], SealPath.DESK)
    returned = ReturnBundle(TODAY, (), (ReturnedReply(storage.new_id(), thread_id, sealed),))
    other = replykey.mask_key(secrets.token_urlsafe(32).encode())
    with pytest.raises(purge.ReturnRefused, match="not sealed to its submitter's reply key"):
        purge.apply(db, data_dir, returned, mask_key=other)
    assert reply_ids(db) == set()
    assert len(purge.apply(db, data_dir, returned, mask_key=MASK_KEY).replies) == 1


@pytest.mark.parametrize("how", ["read", "expired"])
def test_a_bundle_carrying_a_deleted_reply_again_is_refused_and_changes_nothing(db, data_dir,
                                                                                how):  # fmt: skip
    secret = PrivateKey.generate()
    thread_id = thread(db, data_dir, bytes(secret.public_key))
    sealed = envelope.seal(b"{}", [bytes(secret.public_key)], SealPath.DESK)
    reply_id = storage.new_id()
    returned = ReturnBundle(TODAY, (), (ReturnedReply(reply_id, thread_id, sealed),))
    assert purge.apply(db, data_dir, returned, mask_key=MASK_KEY).replies == (reply_id,)
    if how == "read":
        with db.session() as session:
            session.get_one(Reply, reply_id).read_on = TODAY
            session.commit()
        assert purge.forget_read_replies(db, data_dir) == (reply_id,)
    else:
        later = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)
        assert purge.expire_replies(db, data_dir, later, 30) == (reply_id,)
    before = everything(db, data_dir)
    with pytest.raises(purge.ReturnRefused, match=r"deleted .* uploaded before"):
        purge.apply(db, data_dir, returned, mask_key=MASK_KEY)
    assert everything(db, data_dir) == before
    assert reply_ids(db) == set() and deleted_ids(db) == {reply_id}
    # The same reply under a new id (the desk sealing it again) is stored.
    again = ReturnBundle(TODAY, (), (ReturnedReply(storage.new_id(), thread_id, sealed),))
    assert len(purge.apply(db, data_dir, again, mask_key=MASK_KEY).replies) == 1


def test_a_missing_reply_file_does_not_stop_the_deletion(db, data_dir):
    thread_id = thread(db, data_dir)
    gone = add_reply(db, data_dir, thread_id, TODAY, read=TODAY)
    storage.reply_path(data_dir, gone).unlink()
    assert purge.forget_read_replies(db, data_dir) == (gone,)
    assert reply_ids(db) == set()


def test_the_retention_setting():
    assert days_setting({}, "PORTAL_REPLY_RETENTION_DAYS", 30) == 30
    assert days_setting({"PORTAL_REPLY_RETENTION_DAYS": " 7 "}, "PORTAL_REPLY_RETENTION_DAYS",
                        30) == 7  # fmt: skip
    for bad in ("0", "-1", "abc", "4000", "٣"):
        with pytest.raises(ConfigError, match="number of days"):
            days_setting({"PORTAL_REPLY_RETENTION_DAYS": bad}, "PORTAL_REPLY_RETENTION_DAYS", 30)
    assert from_env({"PORTAL_REPLY_RETENTION_DAYS": "12"}).reply_retention_days == 12
    assert from_env({}).reply_retention_days == 30


def test_portal_replies_expire(db, data_dir, database_url, monkeypatch, capsys):
    thread_id = thread(db, data_dir)
    old = add_reply(db, data_dir, thread_id, dt.datetime.now(dt.UTC).date() - dt.timedelta(3))
    young = add_reply(db, data_dir, thread_id, dt.datetime.now(dt.UTC).date())
    monkeypatch.setenv("PORTAL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PORTAL_REPLY_RETENTION_DAYS", "3")
    assert main(["replies", "expire"]) == 0
    assert "1 replies older than 3 days deleted" in capsys.readouterr().out
    assert reply_ids(db) == {young} and old not in reply_ids(db)
    monkeypatch.setenv("PORTAL_REPLY_RETENTION_DAYS", "zero")
    assert main(["replies", "expire"]) == 1
    assert "portal: hint:" in capsys.readouterr().err
