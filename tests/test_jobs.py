"""`portal jobs run`: each job removes exactly what no one can still need."""

from __future__ import annotations

import calendar
import datetime as dt
import os
from dataclasses import replace

import pytest
from source_fixtures import SECRET, _free_port, browser_envelope, make_config, upload
from sqlalchemy import select, text

from portal import cli, jobs, storage
from portal.db import Database
from portal.models import DeletedReply, Reply, SealedBy, Submission, Thread

TODAY = dt.date(2026, 11, 23)


def stamp(path, day: dt.date) -> None:
    midnight = calendar.timegm(day.timetuple())
    os.utime(path, (midnight, midnight))


@pytest.fixture
def portal(make_app, database_url, team_keys, data_dir):
    app = make_app(database_url)
    assert upload(app.test_client(), browser_envelope(team_keys)).status_code == 201
    return make_config(team_keys, data_dir, database_url)


def test_stray_files_from_before_yesterday_are_swept_and_nothing_else(portal, data_dir):
    envelopes = data_dir / storage.ENVELOPE_DIR
    (kept_with_row,) = list(envelopes.iterdir())
    stamp(kept_with_row, TODAY - dt.timedelta(days=400))
    old_stray, new_stray = envelopes / f"{'a' * 32}.env", envelopes / f"{'b' * 32}.env"
    yesterday_stray = envelopes / f"{'c' * 32}.env"
    (data_dir / storage.REPLY_DIR).mkdir(mode=0o700)
    old_reply = data_dir / storage.REPLY_DIR / f"{'d' * 32}.env"
    old_temp, new_temp = envelopes / ".incoming-old", envelopes / ".incoming-new"
    other = envelopes / "notes.txt"
    for path in (old_stray, new_stray, yesterday_stray, old_reply, old_temp, new_temp, other):
        path.write_bytes(b"ciphertext")
    for path in (old_stray, old_reply, old_temp, other):
        stamp(path, TODAY - dt.timedelta(days=2))
    stamp(yesterday_stray, TODAY - dt.timedelta(days=1))
    stamp(new_stray, TODAY)
    os.utime(old_temp, (0, 0))

    summary = jobs.sweep_stray_files(portal, Database(portal.database_url), TODAY)
    assert summary == "removed 3 stray file(s)"
    left = {p.name for p in envelopes.iterdir()} | {p.name for p in old_reply.parent.iterdir()}
    assert left == {kept_with_row.name, new_stray.name, yesterday_stray.name, new_temp.name,
                    other.name}  # fmt: skip


def test_sweeping_a_portal_without_folders_is_harmless(portal, tmp_path):
    bare = replace(portal, data_dir=tmp_path / "none")
    assert jobs.sweep_stray_files(bare, Database(portal.database_url), TODAY) == (
        "removed 0 stray file(s)"
    )


def add_thread(session, name: str, created: dt.date, *, submission: bool = False,
               reply: bool = False) -> None:  # fmt: skip
    thread = Thread(id=name * 32, lookup_digest=name.encode() * 32, reply_public_key=b"k" * 32,
                    created_on=created)  # fmt: skip
    session.add(thread)
    if submission:
        session.add(Submission(id=name * 31 + "s", thread=thread, received_on=created,
                               sealed_by=SealedBy.SERVER, padded_size=65536,
                               envelope_size=70000, recipient_key_ids="ab" * 16))  # fmt: skip
    if reply:
        session.add(Reply(id=name * 31 + "r", thread=thread, received_on=created, size=100))


def thread_ids(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Thread.id)))


def test_only_old_empty_threads_are_purged(portal):
    db = Database(portal.database_url)
    old, recent = TODAY - dt.timedelta(days=181), TODAY - dt.timedelta(days=180)
    with db.session() as session:
        add_thread(session, "1", old)
        add_thread(session, "2", old, submission=True)
        add_thread(session, "3", old, reply=True)
        add_thread(session, "4", recent)
        session.commit()
    before = thread_ids(db)
    summary = jobs.purge_empty_threads(portal, db, TODAY)
    assert summary == "deleted 1 empty thread(s) older than 180 days"
    assert before - thread_ids(db) == {"1" * 32}
    kept = replace(portal, empty_thread_days=0)
    assert jobs.purge_empty_threads(kept, db, TODAY + dt.timedelta(days=999)).startswith("kept")
    assert len(thread_ids(db)) == len(before) - 1


def test_replies_past_the_retention_expire_read_or_not(portal, data_dir):
    db = Database(portal.database_url)
    with db.session() as session:
        add_thread(session, "1", TODAY)
        ages = {"a": 31, "b": 30, "c": 29}
        for name, age in ages.items():
            session.add(Reply(id=name * 32, thread_id="1" * 32, size=9,
                              received_on=TODAY - dt.timedelta(days=age)))  # fmt: skip
        session.commit()
    folder = data_dir / storage.REPLY_DIR
    folder.mkdir(mode=0o700)
    for name in ages:
        (folder / f"{name * 32}.env").write_bytes(b"sealed")
    summary = jobs.expire_old_replies(portal, db, TODAY)
    assert summary == "deleted 2 replies older than 30 days"
    with db.session() as session:
        assert list(session.scalars(select(Reply.id))) == ["c" * 32]
        assert set(session.scalars(select(DeletedReply.id))) == {"a" * 32, "b" * 32}
    assert [p.name for p in folder.iterdir()] == [f"{'c' * 32}.env"]
    shorter = replace(portal, reply_retention_days=1)
    assert jobs.expire_old_replies(shorter, db, TODAY) == "deleted 1 replies older than 1 days"


def test_the_jobs_command_expires_replies_with_the_configured_retention(env, monkeypatch,
                                                                         capsys):  # fmt: skip
    monkeypatch.setenv("PORTAL_REPLY_RETENTION_DAYS", "7")
    assert cli.main(["jobs", "run", "--only", "expire-replies"]) == 0
    assert capsys.readouterr().out == (
        "portal jobs: expire-replies: deleted 0 replies older than 7 days\n"
    )


def test_every_job_has_a_unique_name_and_a_description():
    names = jobs.names()
    assert len(set(names)) == len(names) >= 2
    assert all(job.about for job in jobs.JOBS)


@pytest.fixture
def env(monkeypatch, portal):
    monkeypatch.setenv("PORTAL_SECRET_KEY", SECRET)
    monkeypatch.setenv("PORTAL_DATA_DIR", str(portal.data_dir))
    monkeypatch.setenv("DATABASE_URL", portal.database_url)
    return portal


def test_the_command_runs_every_job_or_only_one(env, capsys):
    assert cli.main(["jobs", "run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[1].strip() for line in out] == jobs.names()
    assert cli.main(["jobs", "run", "--only", "purge-empty-threads"]) == 0
    assert capsys.readouterr().out.startswith("portal jobs: purge-empty-threads: deleted 0")


def test_an_unknown_job_is_a_usage_error(env, capsys):
    assert cli.main(["jobs", "run", "--only", "everything"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_failing_job_fails_the_command_but_not_the_others(env, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://x@127.0.0.1:{_free_port()}/x")
    assert cli.main(["jobs", "run"]) == 1
    out, err = capsys.readouterr()
    assert out.count("FAILED (OperationalError)") == 5  # the jobs that need the database
    assert "blur-directory-times: set the times of 1 folder(s)" in out  # the others still ran
    assert "127.0.0.1" not in err


def test_rows_are_rewritten_in_id_order_not_arrival_order(portal):
    db = Database(portal.database_url)
    with db.session() as session:
        for name in "97531":  # arriving (and deleted) in descending id order
            add_thread(session, name, TODAY, submission=True)
            session.add(DeletedReply(id=name * 32))
            session.commit()
    summary = jobs.reorder_rows(portal, db, TODAY)
    for table, count in (("threads", 6), ("deleted_replies", 5)):
        physical = (
            f"SELECT id FROM {table} ORDER BY ctid"  # noqa: S608 -- a fixed table name
            if portal.database_url.startswith("postgresql")
            else f"SELECT id FROM {table}"  # noqa: S608 -- WITHOUT ROWID: the table's order
        )
        with db.engine.connect() as conn:
            order = [row[0] for row in conn.execute(text(physical))]
        assert order == sorted(order) and len(order) == count
    assert summary.startswith("rewrote 4 tables" if "postgresql" in portal.database_url
                              else "rebuilt the database file")  # fmt: skip
    assert thread_ids(db) >= {c * 32 for c in "97531"}


def test_the_storage_folders_keep_midnight_not_the_latest_arrival(portal, data_dir):
    folder = data_dir / storage.ENVELOPE_DIR
    os.utime(folder, (calendar.timegm(TODAY.timetuple()) + 45_296,) * 2)  # 12:34:56
    assert jobs.blur_directory_times(portal, Database(portal.database_url), TODAY) == (
        "set the times of 1 folder(s) to midnight"
    )
    assert folder.stat().st_mtime == calendar.timegm(TODAY.timetuple())
    assert folder.stat().st_atime == calendar.timegm(TODAY.timetuple())
