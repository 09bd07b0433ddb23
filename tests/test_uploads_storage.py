"""Uploads in storage: expiry, leftovers, the quota and the free space; SQLite and PostgreSQL.

An upload that would not fit is refused before any byte is accepted: no
row, no file. A disk that fills while a chunk is written keeps nothing of
that chunk. Expired uploads go, rows first, and files a crash left behind
go with the next run.
"""

from __future__ import annotations

import errno
import os
import time

import pytest
from source_fixtures import browser_envelope, csrf_token, snapshot, upload
from sqlalchemy import func, select
from uploads_helpers import _empty_uploads, attachment_envelope, new_upload, patch, send, start

from portal import quota, uploads
from portal.db import Database
from portal.models import Upload
from portal.source import uploads as upload_views

__all__ = ["_empty_uploads"]

HOUR = 3600
LIMITS = quota.Limits(max_envelope=1 << 30, quota_bytes=0, min_free_bytes=0, expiry_hours=48)


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


def count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Upload)) or 0)


def parts(data_dir) -> list[str]:
    directory = data_dir / uploads.UPLOAD_DIR
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


@pytest.mark.parametrize(
    ("now", "expected"),
    [(0, 48 * HOUR), (1, 49 * HOUR), (HOUR - 1, 49 * HOUR), (HOUR, 49 * HOUR),
     (1_795_000_123, (1_795_000_123 // HOUR + 49) * HOUR)],
)  # fmt: skip
def test_expiry_is_rounded_up_to_the_hour(now, expected):
    assert uploads.expiry(now, 48) == expected
    assert expected % HOUR == 0 and expected >= now + 48 * HOUR


def test_expired_uploads_are_deleted_with_their_files(db, data_dir):
    start_time = 1_795_000_000
    old = uploads.create(db, data_dir, 1000, LIMITS, start_time)
    new = uploads.create(db, data_dir, 1000, LIMITS, start_time + 10 * HOUR)
    assert count(db) == 2 and len(parts(data_dir)) == 2
    assert uploads.expire(db, data_dir, start_time + 47 * HOUR) == 0
    assert uploads.expire(db, data_dir, start_time + 49 * HOUR) == 1
    assert count(db) == 1 and len(parts(data_dir)) == 1
    with pytest.raises(uploads.UnknownUpload):
        uploads.status(db, old, start_time + 49 * HOUR)
    assert uploads.status(db, new, start_time + 49 * HOUR).offset == 0
    # An upload past its expiry is unknown at once, even before the next expire() runs.
    with pytest.raises(uploads.UnknownUpload):
        uploads.status(db, new, start_time + 59 * HOUR)


def test_creating_an_upload_removes_expired_ones(db, data_dir):
    uploads.create(db, data_dir, 1000, LIMITS, 0)
    uploads.create(db, data_dir, 1000, LIMITS, 100 * HOUR)
    assert count(db) == 1 and len(parts(data_dir)) == 1


def test_files_left_by_a_crash_are_removed_by_the_next_run(db, data_dir):
    now = 1_795_000_000
    live = uploads.create(db, data_dir, 1000, LIMITS, now)
    directory = data_dir / uploads.UPLOAD_DIR
    (directory / f"{'a' * 32}{uploads.SUFFIX}").write_bytes(b"orphan part")  # row deleted
    stale = directory / f"{uploads.STAGING_PREFIX}stale"
    stale.write_bytes(b"sealed, never stored")
    os.utime(stale, (now - 2 * uploads.STAGING_MAX_AGE, now - 2 * uploads.STAGING_MAX_AGE))
    fresh = directory / f"{uploads.STAGING_PREFIX}fresh"
    fresh.write_bytes(b"being sealed right now")
    os.utime(fresh, (now, now))
    other = directory / "README"
    other.write_bytes(b"not ours to remove")
    uploads.expire(db, data_dir, now)
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [fresh.name, other.name, *(p for p in parts(data_dir) if p.endswith(".part"))]
    )
    assert uploads.status(db, live, now).length == 1000
    assert len([p for p in parts(data_dir) if p.endswith(".part")]) == 1


def test_the_quota_refuses_an_upload_before_any_byte(make_app, database_url, team_keys):
    app = make_app(database_url, quota_bytes=3 << 20)
    client = app.test_client()
    csrf = csrf_token(client)
    response = start(client, 4 << 20, csrf)
    assert response.status_code == 507
    assert "storage is full" in response.get_json()["error"]
    assert snapshot(app).files == ()
    # Uploads in progress count at their declared length, stored envelopes at their size.
    assert start(client, 2 << 20, csrf).status_code == 201
    assert start(client, (1 << 20) + 1, csrf).status_code == 507
    report = browser_envelope(team_keys)
    assert upload(client, report, csrf=csrf).status_code == 201
    csrf = csrf_token(client)  # an accepted report rotates it
    assert start(client, (1 << 20) - len(report) + 1, csrf).status_code == 507
    assert start(client, (1 << 20) - len(report), csrf).status_code == 201
    app.extensions["portal.source"].db.dispose()


def test_a_nearly_full_disk_refuses_an_upload_before_any_byte(make_app, database_url,
                                                              monkeypatch):  # fmt: skip
    # The file system's free space, as statvfs would give it for a disk that is nearly full
    # (a fixed figure, so that other processes writing to the real disk cannot change it).
    monkeypatch.setattr(quota, "free_bytes", lambda _path: 1025 << 20)
    app = make_app(database_url)  # PORTAL_MIN_FREE_MIB: 1024 by default
    client = app.test_client()
    response = start(client, 2 << 20, csrf_token(client))
    assert response.status_code == 507
    assert "disk is nearly full" in response.get_json()["error"]
    assert snapshot(app).files == ()
    assert start(client, (1 << 20) - 1000, csrf_token(client)).status_code == 201
    app.extensions["portal.source"].db.dispose()


def test_the_free_space_counts_what_uploads_in_progress_still_need(db, data_dir, monkeypatch):
    monkeypatch.setattr(quota, "free_bytes", lambda _path: 1000 << 20)
    limits = quota.Limits(1 << 40, 0, 700 << 20, 48)
    now = int(time.time())
    uploads.create(db, data_dir, 200 << 20, limits, now)
    with pytest.raises(quota.NoSpace) as refused:
        uploads.create(db, data_dir, 200 << 20, limits, now)
    assert refused.value.reason == "disk"
    assert count(db) == 1 and len(parts(data_dir)) == 1
    assert uploads.create(db, data_dir, 100 << 20, limits, now)


def test_a_disk_that_fills_during_a_chunk_keeps_nothing_of_it(app, client, team_keys,
                                                              monkeypatch):  # fmt: skip
    body, _ = attachment_envelope(team_keys, os.urandom(300_000))
    csrf = csrf_token(client)
    token = new_upload(client, len(body), csrf)
    assert patch(client, token, 0, body[:100_000], csrf).status_code == 200
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    response = patch(client, token, 100_000, body[100_000:200_000], csrf)
    assert response.status_code == 507
    assert response.get_json()["offset"] == 100_000
    monkeypatch.setattr(os, "fsync", real_fsync)
    data_dir = app.extensions["portal.source"].config.data_dir
    (path,) = (data_dir / uploads.UPLOAD_DIR).glob("*.part")
    assert path.read_bytes() == body[:100_000]
    assert client.get(f"/uploads/{token}").get_json()["offset"] == 100_000
    assert patch(client, token, 100_000, body[100_000:], csrf).get_json()["complete"] is True


def test_an_expired_upload_is_unknown_to_every_endpoint(app, client, team_keys, monkeypatch):
    body, _ = attachment_envelope(team_keys, b"late")
    csrf = csrf_token(client)
    token = send(client, body, csrf)
    half = new_upload(client, len(body), csrf)
    later = int(time.time()) + 49 * HOUR
    monkeypatch.setattr(upload_views, "now", lambda: later)
    for each in (token, half):
        assert client.get(f"/uploads/{each}").status_code == 404
        assert patch(client, each, 0, body, csrf).status_code == 404
    response = client.delete(f"/uploads/{half}", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 404
    assert start(client, len(body), csrf).status_code == 201  # and that removes them
    data_dir = app.extensions["portal.source"].config.data_dir
    assert len(list((data_dir / uploads.UPLOAD_DIR).glob("*.part"))) == 1
