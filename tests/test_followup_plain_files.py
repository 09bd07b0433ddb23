"""POST /followup/plain with files, JavaScript off: checked first, sealed as it streams.

The happy path puts a marker in a file's content and name and looks for it
on disk while the body is still arriving and afterwards (the helpers of
``test_source_plain_files``). Hostile forms (unknown receipt, busy thread,
no consent, bad or replayed CSRF token, too many or too large files, a body
cut short, garbage, a text after a file, a failing disk or commit) keep
nothing: no row, no envelope, no spool. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import uuid
from typing import Any

import pytest
from followup_helpers import form_csrf, report
from source_fixtures import answers, csrf_token, rows, snapshot
from sqlalchemy.exc import OperationalError
from test_source_plain_files import Watching, assert_no_marker
from uploads_helpers import _empty_uploads
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from portal import attachment, envelope, followup, receipt, storage, uploads
from portal.source import followup as pages
from portal.source import multipart

__all__ = ["_empty_uploads"]

Files = list[tuple[str, bytes, str]]  # name, content, media type


def followup_body(client, shown: str, files: Files, *, consent: bool = True,
                  csrf: str | None = None, **values: Any) -> tuple[str, bytes]:  # fmt: skip
    """The multipart body the follow-up page sends without JavaScript, files last."""
    items: list[tuple[str, Any]] = [
        ("csrf_token", csrf if csrf is not None else form_csrf(client)),
        ("receipt", shown),
        *({"account": "More about the summons."} | values).items(),
    ]
    if consent:
        items.append(("server_seal_consent", "yes"))
    for name, content, media_type in files:
        items.append(("attachments", FileStorage(io.BytesIO(content), name,
                                                 content_type=media_type)))  # fmt: skip
    boundary, body = encode_multipart(MultiDict(items))
    return f"multipart/form-data; boundary={boundary}", body


def post_files(client, shown: str, files: Files, *, stream: io.BytesIO | None = None,
               **kw: Any):  # fmt: skip
    content_type, body = followup_body(client, shown, files, **kw)
    return client.post("/followup/plain", input_stream=stream or io.BytesIO(body),
                       content_type=content_type, content_length=len(body))  # fmt: skip


def data_dir_of(app):
    return app.extensions["portal.source"].config.data_dir


def opened_followup(app, database_url, identity, shown: str):
    """The follow-up document and its files (bytes, metadata), opened with ``identity``."""
    found = rows(database_url)["submissions"]
    document, files = None, []
    for row in found:
        plain = io.BytesIO()
        with storage.envelope_path(data_dir_of(app), row["id"]).open("rb") as src:
            envelope.open_stream(src, plain, [identity])
        content = plain.getvalue()
        if content.startswith(b"{"):
            parsed = json.loads(content)
            if parsed["type"] == followup.FOLLOWUP_TYPE:
                document = parsed
            continue
        out = io.BytesIO()
        meta = attachment.decode(io.BytesIO(content), out)
        files.append((out.getvalue(), meta))
    assert document is not None
    assert base64.b64decode(document["reply_public_key"]) == receipt.reply_public_key(shown)
    return document, files


def unchanged(app, database_url, before) -> None:
    """Nothing new: the same rows and files, and no upload, spool or staging file left."""
    assert (snapshot(app), rows(database_url)) == before
    upload_dir = data_dir_of(app) / uploads.UPLOAD_DIR
    assert not upload_dir.exists() or list(upload_dir.iterdir()) == []


@pytest.fixture
def no_spool(monkeypatch):
    """Fail the test if a file's first byte is kept: the checks must come before any spool."""

    def refuse(*_args: Any) -> None:
        raise AssertionError("a file was spooled before the form was checked")

    monkeypatch.setattr(multipart.spool, "Spool", refuse)


@pytest.fixture
def thread(app, client, database_url):
    """A report sent without JavaScript; its receipt, and the state before the follow-up."""
    shown = report(client)
    return shown, (snapshot(app), rows(database_url))


def test_follow_up_files_without_javascript_are_sealed_as_they_stream(
    app, client, database_url, team_keys, thread, caplog
):
    shown, _ = thread
    marker = f"MARKER-{uuid.uuid4().hex}"
    content = (marker.encode() + os.urandom(1000)) * 500
    files = [(f"{marker}.jpg", content, "image/jpeg"), ("notes.txt", b"a note", "text/plain")]
    content_type, body = followup_body(client, shown, files, account=f"text {marker}")
    watching = Watching(body, data_dir_of(app), marker.encode())
    response = client.post("/followup/plain", input_stream=watching, content_type=content_type,
                           content_length=len(body))  # fmt: skip
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert watching.checks > 5
    assert_no_marker(data_dir_of(app), marker.encode())
    assert marker not in caplog.text and shown not in caplog.text and shown not in page
    document, opened = opened_followup(app, database_url, team_keys.identities[0], shown)
    assert document["sealed_by"] == "server" and document["fields"]["account"].startswith("text")
    assert [entry["name"] for entry in document["attachments"]] == [f"{marker}.jpg", "notes.txt"]
    for entry, (name, data, media_type) in zip(document["attachments"], files, strict=True):
        assert (entry["media_type"], entry["size"]) == (media_type, len(data))
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["name"] == name
    assert sorted((d, m.listing()["id"]) for d, m in opened) == sorted(
        (data, e["id"]) for e, (_, data, _) in zip(document["attachments"], files, strict=True)
    )
    found = rows(database_url)
    assert len(found["threads"]) == 1 and len(found["submissions"]) == 4
    assert {s["sealed_by"].value for s in found["submissions"]} == {"server"}
    assert list((data_dir_of(app) / uploads.UPLOAD_DIR).iterdir()) == []


def test_an_empty_file_input_sends_the_follow_up_alone(app, client, database_url, team_keys,
                                                       thread):  # fmt: skip
    shown, _ = thread
    response = post_files(client, shown, [("", b"", "application/octet-stream")])
    assert response.status_code == 200
    document, opened = opened_followup(app, database_url, team_keys.identities[1], shown)
    assert opened == [] and "attachments" not in document


def test_an_unknown_receipt_keeps_no_file(app, client, database_url, thread, no_spool):
    shown, before = thread
    other = receipt.generate()
    assert other != shown
    response = post_files(client, other, [("a.jpg", os.urandom(200_000), "image/jpeg")])
    page = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "No report was found for this receipt" in page and "choose your files" in page
    assert other not in page
    unchanged(app, database_url, before)


def test_a_busy_thread_keeps_no_file(request, make_app, database_url):
    app = make_app(database_url, thread_submissions_per_day=2)
    client = app.test_client()
    shown = report(client)
    assert post_files(client, shown, [("a.txt", b"first", "text/plain")]).status_code == 200
    before = snapshot(app), rows(database_url)
    request.getfixturevalue("no_spool")
    response = post_files(client, shown, [("b.txt", os.urandom(100_000), "text/plain")])
    assert response.status_code == 429
    assert "try again tomorrow" in response.get_data(as_text=True)
    unchanged(app, database_url, before)
    app.extensions["portal.source"].db.dispose()


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"consent": False}, "tick the box"),
        ({"account": ""}, "choose your files"),
        ({"shown": "12345"}, "not a valid receipt"),
        ({"csrf": ""}, "out of date"),
        ({"csrf": "forged"}, "out of date"),
        ({"colour": "blue"}, "does not know"),
    ],
)
def test_a_refused_form_keeps_no_file(app, client, database_url, thread, no_spool, changes,
                                      says):  # fmt: skip
    shown, before = thread
    changes = dict(changes)  # the parameter is shared by both databases' runs
    shown = changes.pop("shown", shown)
    response = post_files(client, shown, [("a.jpg", os.urandom(100_000), "image/jpeg")],
                          **changes)  # fmt: skip
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert says in page
    if "csrf" not in changes:
        assert "choose" in page and "again" in page  # the files were not kept
    unchanged(app, database_url, before)


def test_a_replayed_form_with_files_is_refused(app, client, database_url, thread):
    shown, _ = thread
    token = form_csrf(client)
    files = [("a.txt", b"once", "text/plain")]
    assert post_files(client, shown, files, csrf=token).status_code == 200
    before = snapshot(app), rows(database_url)
    again = post_files(client, shown, files, csrf=token)
    assert again.status_code == 400 and "already sent" in again.get_data(as_text=True)
    unchanged(app, database_url, before)


def test_too_many_or_too_large_files_keep_nothing(make_app, database_url):
    app = make_app(database_url, max_files=2, max_file_bytes=1 << 20)
    client = app.test_client()
    shown = report(client)
    before = snapshot(app), rows(database_url)
    three = [(f"{i}.txt", b"x" * 70_000, "text/plain") for i in range(3)]
    large = [("big.bin", os.urandom((1 << 20) + 1), "")]
    for files in (three, large):
        response = post_files(client, shown, files)
        assert response.status_code == 413
        assert "remove some files" in response.get_data(as_text=True)
        unchanged(app, database_url, before)
    app.extensions["portal.source"].db.dispose()


def test_a_body_declared_over_the_limit_is_refused_unread(make_app, sqlite_url):
    app = make_app(sqlite_url, max_attachments_bytes=1 << 20)
    client = app.test_client()
    shown = report(client)
    before = snapshot(app), rows(sqlite_url)
    content_type, body = followup_body(client, shown, [("a.bin", b"1", "")])
    unread = io.BytesIO(body)
    response = client.post("/followup/plain", input_stream=unread, content_type=content_type,
                           environ_overrides={"CONTENT_LENGTH": str(8 << 20)})  # fmt: skip
    assert response.status_code == 413 and unread.tell() == 0
    unchanged(app, sqlite_url, before)


@pytest.mark.parametrize("cut", [0.2, 0.9, 0.999])
def test_a_body_cut_short_keeps_nothing(app, client, database_url, thread, cut):
    shown, before = thread
    files = [("a.bin", os.urandom(300_000), ""), ("b.bin", os.urandom(300_000), "")]
    content_type, body = followup_body(client, shown, files)
    response = client.post(
        "/followup/plain", input_stream=io.BytesIO(body[: int(len(body) * cut)]),
        content_type=content_type, environ_overrides={"CONTENT_LENGTH": str(len(body))},
    )  # fmt: skip
    assert response.status_code == 400
    assert "damaged or incomplete" in response.get_data(as_text=True)
    unchanged(app, database_url, before)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=", b"--x\r\n"),
        ("multipart/form-data; boundary=xyz", os.urandom(10_000)),
        ("text/plain", b"receipt=1"),
    ],
)
def test_a_malformed_body_is_refused(app, client, database_url, thread, content_type, body):
    _, before = thread
    response = client.post("/followup/plain", data=body, content_type=content_type)
    assert response.status_code in (400, 415)
    assert "nothing was stored" in response.get_data(as_text=True)
    unchanged(app, database_url, before)


def test_a_text_field_after_a_file_and_a_file_under_another_name_are_refused(
    app, client, database_url, thread
):
    shown, before = thread
    content_type, body = followup_body(client, shown, [("a.bin", b"data", "")])
    boundary = content_type.split("boundary=")[1].encode()
    end = b"--" + boundary + b"--\r\n"
    late = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="account"\r\n\r\n'
            b"changed after the check\r\n")  # fmt: skip
    stray = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="other"; '
             b'filename="x.bin"\r\n\r\ndata\r\n')  # fmt: skip
    head = body[: body.rindex(end)]
    for extra, status in ((late, 400), (stray, 400)):
        response = client.post("/followup/plain", data=head + extra + end,
                               content_type=content_type)  # fmt: skip
        assert response.status_code == status
        unchanged(app, database_url, before)


def test_a_failing_disk_while_sealing_keeps_nothing(app, client, database_url, thread,
                                                    monkeypatch):  # fmt: skip
    import errno

    shown, before = thread

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    response = post_files(client, shown, [("a.bin", os.urandom(100_000), "")])
    monkeypatch.undo()
    assert response.status_code == 507
    assert "disk is nearly full" in response.get_data(as_text=True)
    unchanged(app, database_url, before)


def test_a_failed_commit_keeps_nothing(app, client, database_url, thread, monkeypatch):
    shown, before = thread

    def broken(*_args: Any, **_kw: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("the database went away"))

    monkeypatch.setattr(storage, "commit_rows", broken)
    response = post_files(client, shown, [("a.bin", os.urandom(100_000), "")])
    monkeypatch.undo()
    assert response.status_code == 503
    assert "could not store the follow-up" in response.get_data(as_text=True)
    unchanged(app, database_url, before)


def test_a_thread_gone_between_the_check_and_the_commit_keeps_nothing(
    app, client, database_url, thread, monkeypatch
):
    shown, before = thread
    checked = pages.store

    def purged(digest: bytes, *args: Any, **kw: Any) -> int:
        return checked(b"\x00" * len(digest), *args, **kw)  # no thread has this digest

    monkeypatch.setattr("portal.source.followup_plain.store", purged)
    response = post_files(client, shown, [("a.bin", os.urandom(100_000), "")])
    assert response.status_code == 404
    assert "choose your files" in response.get_data(as_text=True)
    unchanged(app, database_url, before)


def test_an_overloaded_portal_shows_the_forms_again_filled_in(make_app, database_url):
    app = make_app(database_url, submissions_per_hour=20)  # a burst of 2
    client = app.test_client()
    shown = report(client)
    assert post_files(client, shown, [("a.txt", b"1", "text/plain")]).status_code == 200
    before = snapshot(app), rows(database_url)
    response = post_files(client, shown, [("b.txt", b"2" * 100_000, "text/plain")],
                          account="Kept while the portal is busy.")  # fmt: skip
    page = response.get_data(as_text=True)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "Kept while the portal is busy." in page and shown not in page
    values = dict(answers(account="A report kept while busy."), csrf_token=csrf_token(client))
    items = [(k, v) for k, vs in values.items() for v in (vs if isinstance(vs, list) else [vs])]
    items.append(("attachments", FileStorage(io.BytesIO(b"x"), "x.txt")))
    boundary, body = encode_multipart(MultiDict(items))
    refused = client.post("/report/plain", data=body,
                          content_type=f"multipart/form-data; boundary={boundary}")  # fmt: skip
    assert refused.status_code == 503
    assert "A report kept while busy." in refused.get_data(as_text=True)
    unchanged(app, database_url, before)
    app.extensions["portal.source"].db.dispose()
