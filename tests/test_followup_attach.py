"""Follow-ups with attachments: ``X-Attachments`` on ``POST /followup/sealed``.

The follow-up and its complete uploads are stored in the thread in one
transaction; a malformed, unknown, unfinished or used token, an unknown
thread or a failed commit stores nothing and keeps every upload for a retry.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json

import pytest
from followup_helpers import form_csrf, report, sealed_followup, token_of
from source_fixtures import rows, snapshot
from sqlalchemy.exc import OperationalError
from test_uploads_attach import open_attachment, status
from uploads_helpers import _empty_uploads, attachment_envelope, new_upload, patch, send

from portal import envelope, followup, receipt, storage
from portal.envelope import SealPath

__all__ = ["_empty_uploads"]


def post(client, body: bytes, lookup: str, csrf: str, tokens: str | None):
    headers = {"X-CSRFToken": csrf, "X-Lookup-Token": lookup,
               "Content-Type": "application/octet-stream"}  # fmt: skip
    if tokens is not None:
        headers["X-Attachments"] = tokens
    return client.post("/followup/sealed", data=body, headers=headers)


def listing_followup(team, shown: str, metas) -> bytes:
    document = followup.document({"account": "more files"}, receipt.reply_secret(shown),
                                 list(team.public_keys), "browser", metas)  # fmt: skip
    return envelope.seal(json.dumps(document).encode(), list(team.public_keys), SealPath.BROWSER)


def test_a_followup_and_its_files_join_the_thread(app, client, database_url, team_keys):
    shown = report(client)
    csrf = form_csrf(client)
    files = [(b"first " * 5000, "a.pdf", "application/pdf"), (b"\x00\xff" * 9000, "b.jpg",
             "image/jpeg")]  # fmt: skip
    sealed = [attachment_envelope(team_keys, d, name=n, media_type=t) for d, n, t in files]
    tokens = [send(client, body, csrf) for body, _ in sealed]
    body = listing_followup(team_keys, shown, [meta for _, meta in sealed])
    response = post(client, body, token_of(shown), csrf, " ".join(tokens))
    assert response.status_code == 201, response.get_json()
    found = rows(database_url)
    (thread,) = found["threads"]
    assert len(found["submissions"]) == 4  # the report, the follow-up, two files
    assert {s["thread_id"] for s in found["submissions"]} == {thread["id"]}
    data_dir = app.extensions["portal.source"].config.data_dir
    opened = {}
    for row in found["submissions"]:
        data = storage.envelope_path(data_dir, row["id"]).read_bytes()
        if data == body or envelope.parse_header(data).path is SealPath.SERVER:
            continue  # the follow-up, and the report sent without JavaScript
        content, meta = open_attachment(data_dir, row["id"], team_keys.identities[1])
        opened[meta.name] = content
    assert opened == {name: data for data, name, _ in files}
    assert list((data_dir / "uploads").glob("*")) == []
    assert all(status(client, t).status_code == 404 for t in tokens)


@pytest.mark.parametrize("value", ["", "{t} ", "{t} {t}", "{t},{t}", "x" * 64])
def test_a_malformed_list_stores_nothing(app, client, team_keys, value):
    shown = report(client)
    csrf = form_csrf(client)
    token = send(client, attachment_envelope(team_keys)[0], csrf)
    before = snapshot(app)
    body = sealed_followup(team_keys, shown, {"account": "x"})
    response = post(client, body, token_of(shown), csrf, value.format(t=token))
    assert response.status_code == 400
    assert "list of files" in response.get_json()["error"]
    assert snapshot(app) == before
    assert status(client, token).get_json()["complete"] is True


def test_an_unknown_token_stores_nothing_and_the_retry_works(app, client, team_keys):
    shown = report(client)
    csrf = form_csrf(client)
    good = send(client, attachment_envelope(team_keys)[0], csrf)
    before = snapshot(app)
    body = sealed_followup(team_keys, shown, {"account": "x"})
    response = post(client, body, token_of(shown), csrf, f"{good} {'0' * 64}")
    assert response.status_code == 400
    assert "not known to the portal" in response.get_json()["error"]
    assert snapshot(app) == before
    assert post(client, body, token_of(shown), csrf, good).status_code == 201


def test_an_unfinished_upload_stores_nothing(app, client, team_keys):
    shown = report(client)
    csrf = form_csrf(client)
    data, _ = attachment_envelope(team_keys, b"z" * 200_000)
    half = new_upload(client, len(data), csrf)
    assert patch(client, half, 0, data[:100_000], csrf).status_code == 200
    before = snapshot(app)
    body = sealed_followup(team_keys, shown, {"account": "x"})
    response = post(client, body, token_of(shown), csrf, half)
    assert response.status_code == 409
    assert "has not finished uploading" in response.get_json()["error"]
    assert snapshot(app) == before
    assert status(client, half).get_json()["offset"] == 100_000


def test_an_unknown_thread_keeps_the_uploads(app, client, team_keys):
    shown = report(client)
    csrf = form_csrf(client)
    token = send(client, attachment_envelope(team_keys)[0], csrf)
    before = snapshot(app)
    body = sealed_followup(team_keys, shown, {"account": "x"})
    response = post(client, body, "ab" * 32, csrf, token)
    assert response.status_code == 404
    assert snapshot(app) == before
    assert status(client, token).get_json()["complete"] is True


def test_a_used_token_cannot_be_attached_again(app, client, team_keys):
    shown = report(client)
    csrf = form_csrf(client)
    token = send(client, attachment_envelope(team_keys)[0], csrf)
    body = sealed_followup(team_keys, shown, {"account": "x"})
    assert post(client, body, token_of(shown), csrf, token).status_code == 201
    csrf = form_csrf(client)
    before = snapshot(app)
    response = post(client, body, token_of(shown), csrf, token)  # a replay
    assert response.status_code == 400
    assert snapshot(app) == before


def test_a_failed_commit_moves_every_file_back(app, client, team_keys, monkeypatch):
    shown = report(client)
    csrf = form_csrf(client)
    tokens = [send(client, attachment_envelope(team_keys)[0], csrf) for _ in range(2)]
    data_dir = app.extensions["portal.source"].config.data_dir
    parts = {p.name: p.read_bytes() for p in (data_dir / "uploads").iterdir()}
    before = snapshot(app)
    real = storage.commit_rows

    def fail(*_args: object) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(storage, "commit_rows", fail)
    body = sealed_followup(team_keys, shown, {"account": "x"})
    response = post(client, body, token_of(shown), csrf, " ".join(tokens))
    assert response.status_code == 503
    assert snapshot(app) == before
    assert {p.name: p.read_bytes() for p in (data_dir / "uploads").iterdir()} == parts
    monkeypatch.setattr(storage, "commit_rows", real)
    assert post(client, body, token_of(shown), csrf, " ".join(tokens)).status_code == 201


def test_an_upload_deleted_during_the_commit_stores_nothing(app, client, team_keys, monkeypatch):
    shown = report(client)
    csrf = form_csrf(client)
    token = send(client, attachment_envelope(team_keys)[0], csrf)
    before = snapshot(app)
    real = storage.commit_rows

    def gone(db, rows, upload_ids=()):
        real(db, [], ())  # nothing added: only the check of the upload rows fails
        raise storage.UploadsGone("an upload to attach is gone")

    monkeypatch.setattr(storage, "commit_rows", gone)
    body = sealed_followup(team_keys, shown, {"account": "x"})
    response = post(client, body, token_of(shown), csrf, token)
    assert response.status_code == 409
    assert "already sent with another message" in response.get_json()["error"]
    assert snapshot(app) == before
