"""X-Attachments on /report/sealed: the report and its complete uploads in one transaction.

Any problem with any token (malformed, unknown, incomplete, already used,
expired, over a limit, sealed to other keys) stores nothing and keeps every
upload for a retry. Runs on SQLite and PostgreSQL; the stored attachments
are opened with the team's secret keys and decoded with ``portal.attachment``.
"""

from __future__ import annotations

import io
import json
import time

import pytest
from source_fixtures import (
    browser_envelope,
    csrf_token,
    reply_key,
    rows,
    snapshot,
    token_hex,
    upload,
)
from sqlalchemy.exc import OperationalError
from uploads_helpers import _empty_uploads, attachment_envelope, new_upload, patch, send

from portal import attachment, envelope, report, storage
from portal.models import SealedBy
from portal.source import upload as upload_checks

__all__ = ["_empty_uploads"]


def attach(client, tokens: str | None, csrf: str, team, **kw):
    body = kw.pop("body", None) or browser_envelope(team)
    headers = {} if tokens is None else {"X-Attachments": tokens}
    return _post(client, body, csrf, headers, kw.get("lookup"))


def _post(client, body, csrf, extra, lookup=None):
    import base64

    headers = {
        "X-CSRFToken": csrf,
        "X-Lookup-Token": lookup or token_hex(),
        "X-Reply-Key": base64.b64encode(reply_key()).decode(),
        "Content-Type": "application/octet-stream",
        **extra,
    }
    return client.post("/report/sealed", data=body, headers=headers)


def open_attachment(data_dir, submission_id, identity) -> tuple[bytes, attachment.Metadata]:
    out = io.BytesIO()
    with storage.envelope_path(data_dir, submission_id).open("rb") as src:
        decoder = attachment.Decoder(out)
        envelope.open_stream(src, decoder, [identity])
    return out.getvalue(), decoder.finish()


def status(client, token):
    return client.get(f"/uploads/{token}")


def test_a_report_and_its_files_are_stored_in_one_thread(app, client, database_url, team_keys):
    csrf = csrf_token(client)
    files = [(b"first file " * 1000, "report.pdf", "application/pdf"),
             (bytes(range(256)) * 5000, "photo.jpg", "image/jpeg")]  # fmt: skip
    sealed = [attachment_envelope(team_keys, d, name=n, media_type=t) for d, n, t in files]
    tokens = [send(client, body, csrf) for body, _ in sealed]
    document = report.document({"account": "with files"}, reply_key(), "browser")
    document["attachments"] = [meta.listing() for _, meta in sealed]
    body = browser_envelope(team_keys, document)
    response = attach(client, " ".join(tokens), csrf, team_keys, body=body)
    assert response.status_code == 201, response.get_json()
    found = rows(database_url)
    (thread,) = found["threads"]
    assert len(found["submissions"]) == 3
    assert {s["thread_id"] for s in found["submissions"]} == {thread["id"]}
    assert {s["sealed_by"] for s in found["submissions"]} == {SealedBy.BROWSER}
    data_dir = app.extensions["portal.source"].config.data_dir
    sizes = sorted(s["envelope_size"] for s in found["submissions"])
    assert sizes == sorted([len(body)] + [len(b) for b, _ in sealed])
    opened, reports = {}, []
    for row in found["submissions"]:
        path = storage.envelope_path(data_dir, row["id"])
        assert path.stat().st_size == row["envelope_size"]
        if path.read_bytes() == body:  # the desk tells them apart by their content
            reports.append(row["id"])
            continue
        data, meta = open_attachment(data_dir, row["id"], team_keys.identities[1])
        opened[meta.name] = (data, meta)
    assert len(reports) == 1
    for (data, name, media_type), (_, meta) in zip(files, sealed, strict=True):
        assert opened[name] == (data, meta) and meta.media_type == media_type
    assert list((data_dir / "uploads").glob("*")) == []  # moved, not copied
    for token in tokens:
        assert status(client, token).status_code == 404  # the rows went with the commit


@pytest.mark.parametrize(
    "value",
    ["", " ", "{t} ", " {t}", "{t}  {t2}", "{t},{t2}", "{T}", "{t} {t}", "{t}\t{t2}", "x" * 64],
)
def test_a_malformed_list_stores_nothing_and_keeps_the_uploads(app, client, team_keys, value):
    csrf = csrf_token(client)
    body, _ = attachment_envelope(team_keys)
    t, t2 = send(client, body, csrf), send(client, body, csrf)
    before = snapshot(app)
    response = attach(client, value.format(t=t, t2=t2, T=t.upper()), csrf, team_keys)
    assert response.status_code == 400
    assert "list of files" in response.get_json()["error"]
    assert snapshot(app) == before
    assert status(client, t).get_json()["complete"] is True


def test_an_unknown_token_stores_nothing(app, client, team_keys):
    csrf = csrf_token(client)
    body, _ = attachment_envelope(team_keys)
    good = send(client, body, csrf)
    before = snapshot(app)
    response = attach(client, f"{good} {'0' * 64}", csrf, team_keys)
    assert response.status_code == 400
    assert "not known to the portal" in response.get_json()["error"]
    assert snapshot(app) == before
    assert attach(client, good, csrf, team_keys).status_code == 201  # the retry works


def test_an_unfinished_upload_stores_nothing(app, client, team_keys):
    csrf = csrf_token(client)
    body, _ = attachment_envelope(team_keys, b"z" * 200_000)
    done = send(client, body, csrf)
    half = new_upload(client, len(body), csrf)
    assert patch(client, half, 0, body[:100_000], csrf).status_code == 200
    before = snapshot(app)
    response = attach(client, f"{done} {half}", csrf, team_keys)
    assert response.status_code == 409
    assert "has not finished uploading" in response.get_json()["error"]
    assert snapshot(app) == before
    assert status(client, half).get_json()["offset"] == 100_000


def test_a_used_token_cannot_be_attached_again(app, client, team_keys):
    csrf = csrf_token(client)
    body, _ = attachment_envelope(team_keys)
    token = send(client, body, csrf)
    assert attach(client, token, csrf, team_keys).status_code == 201
    csrf = csrf_token(client)
    before = snapshot(app)
    response = attach(client, token, csrf, team_keys)  # a replay, or another report
    assert response.status_code == 400
    assert snapshot(app) == before


def test_an_expired_upload_cannot_be_attached(app, client, team_keys, monkeypatch):
    csrf = csrf_token(client)
    body, _ = attachment_envelope(team_keys)
    token = send(client, body, csrf)
    later = time.time() + 49 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    before = snapshot(app)
    assert attach(client, token, csrf, team_keys).status_code == 400
    assert snapshot(app) == before


def test_too_many_files_store_nothing(make_app, database_url, team_keys):
    app = make_app(database_url, max_files=2)
    client = app.test_client()
    csrf = csrf_token(client)
    body, _ = attachment_envelope(team_keys)
    tokens = [send(client, body, csrf) for _ in range(3)]
    before = snapshot(app)
    response = attach(client, " ".join(tokens), csrf, team_keys)
    assert response.status_code == 413
    assert "more files" in response.get_json()["error"]
    assert snapshot(app) == before
    assert attach(client, " ".join(tokens[:2]), csrf, team_keys).status_code == 201
    app.extensions["portal.source"].db.dispose()


def test_files_over_the_allegation_limit_store_nothing(make_app, database_url, team_keys):
    app = make_app(database_url, max_attachments_bytes=1 << 20, max_file_bytes=1 << 20)
    client = app.test_client()
    csrf = csrf_token(client)
    body, _ = attachment_envelope(team_keys, b"q" * 700_000)
    tokens = [send(client, body, csrf) for _ in range(2)]  # each fits, both do not
    before = snapshot(app)
    assert attach(client, " ".join(tokens), csrf, team_keys).status_code == 413
    assert snapshot(app) == before
    assert attach(client, tokens[0], csrf, team_keys).status_code == 201
    app.extensions["portal.source"].db.dispose()


def test_uploads_sealed_to_keys_no_longer_active_store_nothing(make_app, database_url, team_keys,
                                                               tmp_path):  # fmt: skip
    app = make_app(database_url)
    client = app.test_client()
    csrf = csrf_token(client)
    body, _ = attachment_envelope(team_keys)
    token = send(client, body, csrf)
    # The team rotates a key before the report is sent: only key A stays.
    rotated = tmp_path / "rotated.json"
    manifest = json.loads(team_keys.manifest.read_text())
    manifest["recipients"] = manifest["recipients"][:1]
    rotated.write_text(json.dumps(manifest))
    later = make_app(database_url, keys_manifest=rotated)
    other = later.test_client()
    with other.session_transaction() as session, client.session_transaction() as first:
        session.update(first)
    report_body = browser_envelope(team_keys, keys=team_keys.public_keys[:1])
    before = snapshot(later)
    response = attach(other, token, csrf, team_keys, body=report_body)
    assert response.status_code == 400
    assert "current keys" in response.get_json()["error"]
    assert snapshot(later) == before
    for each in (app, later):
        each.extensions["portal.source"].db.dispose()


def test_a_taken_lookup_token_puts_the_uploads_back(app, client, team_keys):
    csrf = csrf_token(client)
    lookup = token_hex()
    assert attach(client, None, csrf, team_keys, lookup=lookup).status_code == 201
    csrf = csrf_token(client)
    body, _ = attachment_envelope(team_keys)
    token = send(client, body, csrf)
    before = snapshot(app)
    response = attach(client, token, csrf, team_keys, lookup=lookup)
    assert response.status_code == 409
    assert snapshot(app) == before
    assert attach(client, token, csrf, team_keys).status_code == 201


def test_a_failed_commit_moves_every_file_back(app, client, database_url, team_keys,
                                               monkeypatch):  # fmt: skip
    csrf = csrf_token(client)
    body, _ = attachment_envelope(team_keys, b"m" * 100_000)
    tokens = [send(client, body, csrf) for _ in range(2)]
    before = snapshot(app)
    data_dir = app.extensions["portal.source"].config.data_dir
    parts = {p.name: p.read_bytes() for p in (data_dir / "uploads").iterdir()}
    real = storage.commit_rows

    def fail(*_args: object) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(storage, "commit_rows", fail)
    response = attach(client, " ".join(tokens), csrf, team_keys)
    assert response.status_code == 503
    assert snapshot(app) == before
    assert {p.name: p.read_bytes() for p in (data_dir / "uploads").iterdir()} == parts
    monkeypatch.setattr(storage, "commit_rows", real)
    assert attach(client, " ".join(tokens), csrf, team_keys).status_code == 201
    assert len(rows(database_url)["submissions"]) == 3


def test_an_upload_deleted_during_the_commit_stores_nothing(app, client, team_keys, monkeypatch):
    csrf = csrf_token(client)
    body, _ = attachment_envelope(team_keys)
    token = send(client, body, csrf)
    claim = upload_checks.claim_attachments

    def claim_then_delete(*args: object, **kwargs: object):
        staged = claim(*args, **kwargs)  # type: ignore[arg-type]
        assert client.delete(f"/uploads/{token}", headers={"X-CSRF-Token": csrf}).status_code == 204
        return staged

    monkeypatch.setattr(upload_checks, "claim_attachments", claim_then_delete)
    before = snapshot(app)
    response = attach(client, token, csrf, team_keys)
    assert response.status_code == 409
    assert snapshot(app).submissions == before.submissions == 0
    assert [f for f in snapshot(app).files if f.startswith("envelopes/")] == []


def test_a_report_without_files_is_unchanged(app, client, team_keys):
    assert upload(client, browser_envelope(team_keys)).status_code == 201
    assert snapshot(app).submissions == 1
