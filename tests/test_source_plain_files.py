"""POST /report/plain with files, JavaScript off: read as it streams, sealed, no plaintext on disk.

The happy path puts a marker in a file's content and in its name and looks
for it, while the body is still arriving and afterwards, in every file of
the data directory, in the top of the temporary directory, and in every
file this process has open (an unlinked spool has no name but is still
open). Attachments are opened with the team's keys and ``portal.attachment``.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from source_fixtures import answers, csrf_token, receipt_of, rows, snapshot
from uploads_helpers import _empty_uploads
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from portal import attachment, envelope, quota, receipt, storage, uploads

__all__ = ["_empty_uploads"]

Files = list[tuple[str, bytes, str]]  # name, content, media type


def form_body(client, files: Files, *, consent: bool = True, csrf: str | None = None,
              **changes: Any) -> tuple[str, bytes]:  # fmt: skip
    """The multipart body a browser sends: the answers, then each file under ``attachments``."""
    values = dict(answers(**changes), csrf_token=csrf if csrf is not None else csrf_token(client))
    if consent:
        values["server_seal_consent"] = "yes"
    fields = [(k, v) for k, vs in values.items() for v in (vs if isinstance(vs, list) else [vs])]
    items: list[tuple[str, Any]] = list(fields)
    for name, content, media_type in files:
        part = FileStorage(io.BytesIO(content), name, content_type=media_type)
        items.append(("attachments", part))
    # A MultiDict keeps the order of first insertion, so the files come last, as from a browser.
    boundary, body = encode_multipart(MultiDict(items))
    return f"multipart/form-data; boundary={boundary}", body


def post_files(client, files: Files, *, stream: io.BytesIO | None = None, **kw: Any):
    content_type, body = form_body(client, files, **kw)
    return client.post("/report/plain", input_stream=stream or io.BytesIO(body),
                       content_type=content_type, content_length=len(body))  # fmt: skip


def open_all(app, database_url, identity) -> tuple[dict[str, Any], list[tuple[bytes, Any]]]:
    """The report document and every attachment (bytes and metadata), opened."""
    data_dir = app.extensions["portal.source"].config.data_dir
    document, opened = None, []
    for row in rows(database_url)["submissions"]:
        with storage.envelope_path(data_dir, row["id"]).open("rb") as src:
            plain = io.BytesIO()
            envelope.open_stream(src, plain, [identity])
        content = plain.getvalue()
        if content.startswith(b"{"):
            document = json.loads(content)
            continue
        out = io.BytesIO()
        meta = attachment.decode(io.BytesIO(content), out)
        opened.append((out.getvalue(), meta))
    assert document is not None
    return document, opened


def readable_files(data_dir: Path) -> list[Path]:
    """Every file a plaintext could hide in: the data directory, /tmp, and open descriptors."""
    found = [p for p in data_dir.rglob("*") if p.is_file()]
    top = Path(tempfile.gettempdir())
    found += [p for p in top.iterdir() if p.is_file()]
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if Path(os.readlink(fd)).parts[:2] != ("/", "proc") and fd.resolve().is_file():
                found.append(fd)
        except OSError:
            continue
    return found


def assert_no_marker(data_dir: Path, marker: bytes) -> None:
    for path in readable_files(data_dir):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        assert marker not in data, f"plaintext found in {path}"
        assert marker not in path.name.encode()


class Watching(io.BytesIO):
    """A request body that looks for the marker on disk every time the server reads from it."""

    def __init__(self, body: bytes, data_dir: Path, marker: bytes) -> None:
        super().__init__(body)
        self.data_dir, self.marker, self.checks = data_dir, marker, 0

    def _look(self) -> None:
        if self.tell() > 0:
            assert_no_marker(self.data_dir, self.marker)
            self.checks += 1

    def read(self, size: int | None = -1) -> bytes:
        self._look()
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        self._look()
        return super().readinto(buffer)


def test_files_without_javascript_are_sealed_as_they_stream(request, app, client, database_url,
                                                            team_keys, caplog):  # fmt: skip
    marker = f"MARKER-{uuid.uuid4().hex}"
    data_dir = app.extensions["portal.source"].config.data_dir
    content = (marker.encode() + os.urandom(1000)) * 700  # 0.7 MB, the marker all through it
    files = [(f"{marker}.jpg", content, "image/jpeg"),
             ("notes.txt", b"short note", "text/plain")]  # fmt: skip
    content_type, body = form_body(client, files)
    watching = Watching(body, data_dir, marker.encode())
    response = client.post("/report/plain", input_stream=watching, content_type=content_type,
                           content_length=len(body))  # fmt: skip
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert watching.checks > 10  # looked many times while the file was arriving
    assert_no_marker(data_dir, marker.encode())
    if database_url.startswith("postgresql"):
        pg_dir = request.getfixturevalue("postgres_server").data_dir
        assert all(marker.encode() not in p.read_bytes() for p in pg_dir.rglob("*")
                   if p.is_file())  # fmt: skip
    assert marker not in caplog.text
    shown = receipt_of(page)
    document, opened = open_all(app, database_url, team_keys.identities[0])
    assert document["sealed_by"] == "server"
    assert document["reply_public_key"]
    assert receipt.reply_public_key(shown) == __import__("base64").b64decode(
        document["reply_public_key"]
    )
    listed = document["attachments"]
    assert [e["name"] for e in listed] == [f"{marker}.jpg", "notes.txt"]
    for entry, (name, data, media_type) in zip(listed, files, strict=True):
        assert entry == {
            "id": entry["id"], "media_type": media_type, "name": name,
            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
        }  # fmt: skip
        assert re.fullmatch(r"[0-9a-f]{32}", entry["id"])
    assert sorted((d, m.listing()["id"]) for d, m in opened) == sorted(
        (data, entry["id"]) for entry, (_, data, _) in zip(listed, files, strict=True)
    )
    assert {s["sealed_by"].value for s in rows(database_url)["submissions"]} == {"server"}
    assert list((data_dir / uploads.UPLOAD_DIR).iterdir()) == []  # no spool, no staging left


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("../../../etc/passwd", "../../../etc/passwd"),
        ("a\x01b\x1fc\x7fd.txt", "a\x01b\x1fc\x7fd.txt"),
        ("\u202egpj.exe", "\u202egpj.exe"),
        ("x" * 5000 + ".pdf", "x" * 1000),
        ("ж" * 3000, "ж" * 1000),
    ],
)
def test_hostile_file_names_are_sealed_as_text_and_never_used_as_paths(
    app, client, database_url, team_keys, name, kept
):
    response = post_files(client, [(name, b"content", "application/pdf")])
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    _, opened = open_all(app, database_url, team_keys.identities[1])
    ((data, meta),) = opened
    assert data == b"content" and meta.name == kept
    stored = [p.name for p in app.extensions["portal.source"].config.data_dir.rglob("*")]
    assert all(re.fullmatch(r"[0-9a-f]{32}\.env|envelopes|uploads|portal\.sqlite3.*", p)
               for p in stored), stored  # fmt: skip


def test_an_empty_file_input_sends_the_report_alone(app, client, database_url, team_keys):
    response = post_files(client, [("", b"", "application/octet-stream")])
    assert response.status_code == 200
    document, opened = open_all(app, database_url, team_keys.identities[0])
    assert opened == [] and "attachments" not in document


def test_an_empty_file_that_was_chosen_is_kept(app, client, database_url, team_keys):
    response = post_files(client, [("empty.txt", b"", "text/plain")])
    assert response.status_code == 200
    document, ((data, meta),) = open_all(app, database_url, team_keys.identities[0])
    assert data == b"" and meta.size == 0
    assert document["attachments"] == [meta.listing()]


def nothing_kept(app) -> None:
    found = snapshot(app)
    assert found.submissions == 0 and found.threads == 0
    assert [f for f in found.files if not f.startswith("uploads/")] == []
    assert [f for f in found.files if f.startswith("uploads/")] == []


def test_without_consent_files_are_not_kept_and_the_form_says_choose_them_again(app, client):
    response = post_files(client, [("photo.jpg", b"x" * 200_000, "image/jpeg")], consent=False)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "tick the box" in page and "choose them again" in page
    nothing_kept(app)


def test_invalid_answers_with_files_keep_nothing(app, client):
    response = post_files(client, [("a.jpg", b"x" * 1000, "image/jpeg")], account=None)
    assert response.status_code == 400
    assert "choose your files" in response.get_data(as_text=True)
    nothing_kept(app)


@pytest.mark.parametrize("csrf", ["", "forged"])
def test_a_bad_csrf_token_with_files_keeps_nothing(app, client, csrf):
    csrf_token(client)
    response = post_files(client, [("a.jpg", b"x" * 1000, "image/jpeg")], csrf=csrf)
    assert response.status_code == 400
    assert "out of date" in response.get_data(as_text=True)
    nothing_kept(app)


def test_a_replayed_form_with_files_is_refused(app, client):
    token = csrf_token(client)
    assert post_files(client, [("a.jpg", b"1", "image/jpeg")], csrf=token).status_code == 200
    before = snapshot(app)
    response = post_files(client, [("a.jpg", b"1", "image/jpeg")], csrf=token)
    assert response.status_code == 400
    assert snapshot(app) == before


def test_too_many_files_keep_nothing(make_app, database_url):
    app = make_app(database_url, max_files=2)
    client = app.test_client()
    files = [(f"{i}.txt", b"x" * 70_000, "text/plain") for i in range(3)]
    response = post_files(client, files)
    assert response.status_code == 413
    assert "too many" in response.get_data(as_text=True)
    nothing_kept(app)
    app.extensions["portal.source"].db.dispose()


@pytest.mark.parametrize(("sizes", "changes"), [
    ([(1 << 20) + 1], {}),  # one file over its limit
    ([900_000, 900_000, 900_000], {"max_file_bytes": 1 << 20}),  # the files together
])  # fmt: skip
def test_files_over_a_limit_keep_nothing(make_app, database_url, sizes, changes):
    settings = {"max_file_bytes": 1 << 20, "max_attachments_bytes": 2 << 20, **changes}
    app = make_app(database_url, **settings)
    client = app.test_client()
    response = post_files(client, [(f"{i}.bin", os.urandom(n), "") for i, n in enumerate(sizes)])
    assert response.status_code == 413
    nothing_kept(app)
    app.extensions["portal.source"].db.dispose()


def test_a_body_declared_over_the_limit_is_refused_before_reading(make_app, sqlite_url):
    app = make_app(sqlite_url, max_attachments_bytes=1 << 20)
    client = app.test_client()
    content_type, body = form_body(client, [("a.bin", b"1", "")])
    unread = io.BytesIO(body)
    response = client.post("/report/plain", input_stream=unread, content_type=content_type,
                           environ_overrides={"CONTENT_LENGTH": str(8 << 20)})  # fmt: skip
    assert response.status_code == 413
    assert unread.tell() == 0  # not a byte of it was read
    nothing_kept(app)


def test_a_body_without_length_is_refused(sqlite_app, sqlite_client):
    content_type, body = form_body(sqlite_client, [("a.bin", b"1", "")])
    response = sqlite_client.post(
        "/report/plain", input_stream=io.BytesIO(body), content_type=content_type,
        environ_overrides={"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True},
    )  # fmt: skip
    assert response.status_code == 411
    nothing_kept(sqlite_app)


def test_the_quota_refuses_files_before_reading_them(make_app, database_url):
    app = make_app(database_url, quota_bytes=1 << 20)
    client = app.test_client()
    content_type, body = form_body(client, [("a.bin", os.urandom(1 << 20), "")])
    unread = io.BytesIO(body)
    response = client.post("/report/plain", input_stream=unread, content_type=content_type,
                           content_length=len(body))  # fmt: skip
    assert response.status_code == 507
    assert "storage is full" in response.get_data(as_text=True)
    assert unread.tell() == 0
    nothing_kept(app)
    app.extensions["portal.source"].db.dispose()


def test_a_nearly_full_disk_refuses_files_before_reading_them(make_app, sqlite_url,
                                                              monkeypatch):  # fmt: skip
    monkeypatch.setattr(quota, "free_bytes", lambda _path: 1025 << 20)  # a nearly full disk
    app = make_app(sqlite_url)
    client = app.test_client()
    content_type, body = form_body(client, [("a.bin", os.urandom(1 << 20), "")])
    response = client.post("/report/plain", input_stream=io.BytesIO(body),
                           content_type=content_type, content_length=len(body))  # fmt: skip
    assert response.status_code == 507
    assert "disk is nearly full" in response.get_data(as_text=True)
    nothing_kept(app)


@pytest.mark.parametrize("cut", [0.3, 0.9, 0.999])
def test_a_body_cut_short_keeps_nothing(sqlite_app, sqlite_client, cut):
    files = [("a.bin", os.urandom(300_000), ""), ("b.bin", os.urandom(300_000), "")]
    content_type, body = form_body(sqlite_client, files)
    short = body[: int(len(body) * cut)]
    response = sqlite_client.post(
        "/report/plain", input_stream=io.BytesIO(short), content_type=content_type,
        environ_overrides={"CONTENT_LENGTH": str(len(body))},
    )  # fmt: skip
    assert response.status_code == 400
    nothing_kept(sqlite_app)


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary="])
def test_a_multipart_body_without_boundary_is_refused(sqlite_app, sqlite_client, content_type):
    _, body = form_body(sqlite_client, [])
    response = sqlite_client.post("/report/plain", data=body, content_type=content_type)
    assert response.status_code == 400
    nothing_kept(sqlite_app)


def test_garbage_instead_of_a_multipart_body_is_refused(sqlite_app, sqlite_client):
    response = sqlite_client.post("/report/plain", data=os.urandom(10_000),
                                  content_type="multipart/form-data; boundary=xyz")  # fmt: skip
    assert response.status_code == 400
    nothing_kept(sqlite_app)


def test_a_failing_disk_while_sealing_keeps_nothing(sqlite_app, sqlite_client, monkeypatch):
    import errno

    real = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    response = post_files(sqlite_client, [("a.bin", os.urandom(100_000), "")])
    monkeypatch.setattr(os, "fsync", real)
    assert response.status_code == 507
    assert "disk is nearly full" in response.get_data(as_text=True)
    nothing_kept(sqlite_app)


def test_a_text_field_after_a_file_is_refused(sqlite_app, sqlite_client):
    content_type, body = form_body(sqlite_client, [("a.bin", b"data", "")])
    boundary = content_type.split("boundary=")[1].encode()
    extra = (b'--' + boundary + b'\r\nContent-Disposition: form-data; name="account"\r\n\r\n'
             b"changed after the check\r\n--" + boundary + b"--\r\n")  # fmt: skip
    body = body[: body.rindex(b"--" + boundary + b"--")] + extra
    response = sqlite_client.post("/report/plain", data=body, content_type=content_type)
    assert response.status_code == 400
    nothing_kept(sqlite_app)


def test_portal_desk_decrypt_opens_a_file_sealed_without_javascript(
    app, client, database_url, desk_keys, tmp_path
):
    import subprocess
    import sys

    content = os.urandom(150_000)
    response = post_files(client, [("../../évidence\x01.png", content, "image/png")])
    assert response.status_code == 200
    data_dir = app.extensions["portal.source"].config.data_dir
    found = []
    for row in rows(database_url)["submissions"]:
        out = tmp_path / f"out-{row['id']}"
        out.mkdir()
        proc = subprocess.run(
            [Path(sys.executable).parent / "portal-desk", "decrypt", "--secret-key",
             desk_keys[0].secret_file, "--passphrase-file", desk_keys[0].passphrase_file, "-o",
             out, storage.envelope_path(data_dir, row["id"])],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if "holds a report" in proc.stderr:
            continue  # the report itself: -o takes a file name for it
        assert proc.returncode == 0, proc.stderr
        assert "SHA-256 verified" in proc.stderr
        found += [p for p in out.iterdir()]
    files = [p for p in found if p.read_bytes() == content]
    assert len(files) == 1 and files[0].parent.name.startswith("out-")
    assert ".." not in files[0].name and "\x01" not in files[0].name
