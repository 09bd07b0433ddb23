"""/uploads: the resumable upload protocol, endpoint by endpoint, on SQLite and PostgreSQL.

Every hostile request gets a 4xx (or 503/507) with a JSON message a person
can act on and, where the client needs it, the committed offset; none of
them changes the upload, except a bad header or a damaged envelope, which
delete it. Real envelopes throughout (``portal.attachment`` sealed to the
team's keys, as the browser does).
"""

from __future__ import annotations

import hashlib
import io
import re
import stat

import pytest
from source_fixtures import csrf_token, snapshot
from sqlalchemy import create_engine, select
from test_source_i18n import pseudo_client, translations
from uploads_helpers import (
    _empty_uploads,
    attachment_envelope,
    new_upload,
    patch,
    random_bytes,
    send,
    start,
)

from portal import envelope, quota, uploads
from portal.envelope import SealPath
from portal.models import Upload

__all__ = ["_empty_uploads", "pseudo_client", "translations"]

CHUNK = uploads.MAX_CHUNK


def upload_rows(url: str) -> list[dict[str, object]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(Upload.__table__))]
    finally:
        engine.dispose()


def part_file(app, token: str) -> bytes:
    data_dir = app.extensions["portal.source"].config.data_dir
    (path,) = (data_dir / uploads.UPLOAD_DIR).glob("*.part")
    return path.read_bytes()


@pytest.fixture
def sealed(team_keys) -> bytes:
    """An attachment envelope of a little over two chunks of upload."""
    body, _ = attachment_envelope(team_keys, random_bytes(2 * CHUNK + 1000))
    return body


def test_a_file_uploads_in_chunks_and_only_its_token_digest_is_kept(app, client, database_url,
                                                                    sealed):  # fmt: skip
    csrf = csrf_token(client)
    response = start(client, len(sealed), csrf)
    assert response.status_code == 201
    answer = response.get_json()
    assert set(answer) == {"token", "offset", "length", "max_chunk"}
    assert re.fullmatch(r"[0-9a-f]{64}", answer["token"])
    assert answer["offset"] == 0 and answer["length"] == len(sealed)
    assert answer["max_chunk"] == 1048832 == 16 * (envelope.CHUNK_SIZE + envelope.TAG_SIZE)
    assert response.headers["Cache-Control"] == "no-store"
    token = answer["token"]
    (row,) = upload_rows(database_url)
    assert set(row) == {"id", "token_digest", "length", "committed_offset", "complete",
                        "expires_at"}  # fmt: skip
    assert bytes(row["token_digest"]) == hashlib.sha256(bytes.fromhex(token)).digest()
    assert token not in repr(row) and bytes.fromhex(token) not in repr(row).encode()
    assert row["expires_at"] % 3600 == 0  # rounded to the hour, not the time of arrival
    for at in range(0, len(sealed), CHUNK):
        piece = sealed[at : at + CHUNK]
        response = patch(client, token, at, piece, csrf)
        assert response.status_code == 200, response.get_json()
        done = at + len(piece)
        expected = {"offset": done, "complete": True} if done == len(sealed) else {"offset": done}
        assert response.get_json() == expected
        assert client.get(f"/uploads/{token}").get_json() == {
            "offset": done, "length": len(sealed), "complete": done == len(sealed)}  # fmt: skip
    assert part_file(app, token) == sealed
    data_dir = app.extensions["portal.source"].config.data_dir
    (path,) = (data_dir / uploads.UPLOAD_DIR).glob("*.part")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.stat().st_mtime % 3600 == 0  # the file's time says no more than the row
    (row,) = upload_rows(database_url)
    assert row["complete"] is True and row["committed_offset"] == len(sealed)


def test_unaligned_chunks_of_any_length_are_accepted(app, client, sealed):
    token = send(client, sealed, csrf_token(client), chunk=7777)
    assert part_file(app, token) == sealed


@pytest.mark.parametrize(
    "value", ["", "abc", "-5", "+5", "1e6", " 5", "5 ", "0x10", "１２３", "99999999999999999999"]
)
def test_a_malformed_upload_length_is_refused(app, client, value):
    response = start(client, value)
    assert response.status_code == 400
    assert "did not say its size" in response.get_json()["error"]
    assert snapshot(app).files == ()


def test_a_missing_upload_length_is_refused(app, client):
    response = client.post("/uploads", headers={"X-CSRF-Token": csrf_token(client)})
    assert response.status_code == 400
    assert "did not say its size" in response.get_json()["error"]


@pytest.mark.parametrize("length", [0, 1, 1000])
def test_a_length_no_envelope_can_have_is_refused(app, client, length):
    response = start(client, length)
    assert response.status_code == 400
    assert "cannot be that of an encrypted file" in response.get_json()["error"]


def test_an_upload_over_the_file_limit_is_refused_before_anything_is_stored(
    make_app, database_url, team_keys
):
    app = make_app(database_url, max_file_bytes=1 << 20)
    client = app.test_client()
    largest = quota.max_envelope(1 << 20, len(team_keys.public_keys))
    response = start(client, largest + 1)
    assert response.status_code == 413
    assert "larger than this portal accepts" in response.get_json()["error"]
    assert upload_rows(database_url) == [] and snapshot(app).files == ()
    assert start(client, largest).status_code == 201
    app.extensions["portal.source"].db.dispose()


def test_a_request_body_on_create_is_refused(app, client, sealed):
    headers = {"X-CSRF-Token": csrf_token(client), "Upload-Length": str(len(sealed))}
    response = client.post("/uploads", data=sealed[:100], headers=headers)
    assert response.status_code == 400
    assert snapshot(app).files == ()


@pytest.mark.parametrize("method", ["post", "patch", "delete"])
@pytest.mark.parametrize("csrf", ["", "forged", None])
def test_every_change_needs_the_csrf_token(app, client, database_url, sealed, method, csrf):
    token = new_upload(client, len(sealed), csrf_token(client))
    headers = {"Upload-Length": str(len(sealed)), "Upload-Offset": "0",
               "Content-Type": "application/octet-stream"}  # fmt: skip
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    path = "/uploads" if method == "post" else f"/uploads/{token}"
    response = getattr(client, method)(path, data=sealed[:CHUNK] if method == "patch" else None,
                                       headers=headers)  # fmt: skip
    assert response.status_code == 400
    assert "out of date" in response.get_json()["error"]
    (row,) = upload_rows(database_url)
    assert row["committed_offset"] == 0


@pytest.mark.parametrize("value", ["", "x", "-1", "1.0", " 0"])
def test_a_malformed_offset_is_refused(app, client, sealed, value):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    response = patch(client, token, value, sealed[:100], csrf)
    assert response.status_code == 400
    assert "did not say where it goes" in response.get_json()["error"]
    assert client.get(f"/uploads/{token}").get_json()["offset"] == 0


def test_duplicate_overlapping_and_out_of_order_chunks_change_nothing(app, client, sealed):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    assert patch(client, token, 0, sealed[:CHUNK], csrf).status_code == 200
    for at in (0, CHUNK - 10, CHUNK + 10, 2 * CHUNK, 1):  # replayed, overlapping, ahead
        response = patch(client, token, at, sealed[at : at + 100], csrf)
        assert response.status_code == 409
        assert response.get_json() == {
            "error": response.get_json()["error"], "offset": CHUNK}  # fmt: skip
        assert "Carry on from the offset given" in response.get_json()["error"]
    assert part_file(app, token) == sealed[:CHUNK]
    assert client.get(f"/uploads/{token}").get_json()["offset"] == CHUNK


def test_a_chunk_past_the_end_or_too_long_is_refused(app, client, sealed):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    response = patch(client, token, 0, sealed[: CHUNK + 1], csrf)
    assert response.status_code == 413
    assert response.get_json()["offset"] == 0
    send_until = 2 * CHUNK
    for at in range(0, send_until, CHUNK):
        assert patch(client, token, at, sealed[at : at + CHUNK], csrf).status_code == 200
    response = patch(client, token, send_until, sealed[send_until:] + b"extra", csrf)
    assert response.status_code == 413
    assert "runs past the end" in response.get_json()["error"]
    assert part_file(app, token) == sealed[:send_until]


def test_an_empty_chunk_is_refused(app, client, sealed):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    response = client.patch(
        f"/uploads/{token}", data=b"", environ_overrides={"CONTENT_LENGTH": "0"},
        headers={"X-CSRF-Token": csrf, "Upload-Offset": "0",
                 "Content-Type": "application/octet-stream"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "arrived empty" in response.get_json()["error"]


def test_chunks_after_the_end_are_refused(app, client, sealed):
    csrf = csrf_token(client)
    token = send(client, sealed, csrf)
    response = patch(client, token, len(sealed), b"more", csrf)
    assert response.status_code == 409
    assert response.get_json()["offset"] == len(sealed)
    assert part_file(app, token) == sealed


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data",
                                          "application/x-www-form-urlencoded"])  # fmt: skip
def test_a_wrong_content_type_is_refused(app, client, sealed, content_type):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    response = patch(client, token, 0, sealed[:100], csrf, **{"Content-Type": content_type})
    assert response.status_code == 415
    assert response.get_json()["error"]
    assert client.get(f"/uploads/{token}").get_json()["offset"] == 0


@pytest.mark.parametrize("token", ["0" * 64, "A" * 64, "g" * 64, "zz", "0" * 63, "0" * 65, "%2e"])
def test_unknown_or_malformed_tokens_are_not_found(app, client, sealed, token):
    csrf = csrf_token(client)
    new_upload(client, len(sealed), csrf)
    assert client.get(f"/uploads/{token}").status_code == 404
    assert patch(client, token, 0, sealed[:100], csrf).status_code == 404
    response = client.delete(f"/uploads/{token}", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 404
    assert "not known to the portal" in response.get_json()["error"]


def test_delete_removes_the_upload_and_its_file(app, client, database_url, sealed):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    assert patch(client, token, 0, sealed[:CHUNK], csrf).status_code == 200
    response = client.delete(f"/uploads/{token}", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204 and response.data == b""
    assert upload_rows(database_url) == [] and snapshot(app).files == ()
    assert client.get(f"/uploads/{token}").status_code == 404
    assert patch(client, token, CHUNK, sealed[CHUNK : 2 * CHUNK], csrf).status_code == 404


def test_a_header_for_other_keys_deletes_the_upload(app, client, database_url, team_keys):
    body, _ = attachment_envelope(team_keys, b"x" * 1000, keys=(team_keys.public_keys[0],
                                                                 team_keys.outsider))  # fmt: skip
    csrf = csrf_token(client)
    token = new_upload(client, len(body), csrf)
    response = patch(client, token, 0, body[:5000], csrf)
    assert response.status_code == 400
    assert "current keys" in response.get_json()["error"]
    assert upload_rows(database_url) == [] and snapshot(app).files == ()


def test_a_header_sealed_by_the_server_deletes_the_upload(app, client, database_url, team_keys):
    body, _ = attachment_envelope(team_keys, b"x" * 1000, path=SealPath.SERVER)
    csrf = csrf_token(client)
    token = new_upload(client, len(body), csrf)
    response = patch(client, token, 0, body, csrf)
    assert response.status_code == 400
    assert "encrypted in your browser" in response.get_json()["error"]
    assert upload_rows(database_url) == []


def test_a_header_announcing_another_length_deletes_the_upload(app, client, database_url,
                                                               sealed):  # fmt: skip
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed) + envelope.CHUNK_SIZE, csrf)
    response = patch(client, token, 0, sealed[:CHUNK], csrf)
    assert response.status_code == 400
    assert "does not have the size" in response.get_json()["error"]
    assert upload_rows(database_url) == [] and snapshot(app).files == ()


def test_garbage_instead_of_a_header_deletes_the_upload(app, client, database_url, sealed):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    response = patch(client, token, 0, b"GIF89a" + bytes(5000), csrf)
    assert response.status_code == 400
    assert "damaged" in response.get_json()["error"]
    assert upload_rows(database_url) == []


def test_the_header_is_checked_even_when_it_arrives_byte_by_byte(app, client, database_url,
                                                                 team_keys):  # fmt: skip
    body, _ = attachment_envelope(team_keys, b"x", keys=(team_keys.outsider,
                                                         team_keys.public_keys[0]))  # fmt: skip
    csrf = csrf_token(client)
    token = new_upload(client, len(body), csrf)
    size = envelope.header_size(2)
    for at in range(0, size - 1, 60):
        step = min(60, size - 1 - at)
        assert patch(client, token, at, body[at : at + step], csrf).status_code == 200
    response = patch(client, token, size - 1, body[size - 1 : size + 10], csrf)
    assert response.status_code == 400 and upload_rows(database_url) == []


def part_path(app):
    data_dir = app.extensions["portal.source"].config.data_dir
    (path,) = (data_dir / uploads.UPLOAD_DIR).glob("*.part")
    return path


def test_an_envelope_damaged_on_disk_is_deleted_when_it_completes(app, client, database_url,
                                                                  sealed):  # fmt: skip
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    assert patch(client, token, 0, sealed[:CHUNK], csrf).status_code == 200
    # The header passed its check; then the disk changed its padded size to another valid one.
    header = envelope.parse_header(sealed)
    other = envelope.padme(header.padded_size + envelope.CHUNK_SIZE)
    with part_path(app).open("r+b") as fh:
        fh.seek(8)
        fh.write(other.to_bytes(8, "big"))
    assert patch(client, token, CHUNK, sealed[CHUNK : 2 * CHUNK], csrf).status_code == 200
    response = patch(client, token, 2 * CHUNK, sealed[2 * CHUNK :], csrf)
    assert response.status_code == 400
    assert "damaged" in response.get_json()["error"]
    assert upload_rows(database_url) == [] and snapshot(app).files == ()


def test_a_part_file_that_lost_bytes_deletes_the_upload(app, client, database_url, sealed):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    assert patch(client, token, 0, sealed[:CHUNK], csrf).status_code == 200
    with part_path(app).open("r+b") as fh:
        fh.truncate(CHUNK - 1)  # acknowledged bytes gone (a damaged disk, a restored backup)
    response = patch(client, token, CHUNK, sealed[CHUNK : 2 * CHUNK], csrf)
    assert response.status_code == 400
    assert "damaged" in response.get_json()["error"]
    assert upload_rows(database_url) == [] and snapshot(app).files == ()


def test_a_crash_between_write_and_commit_is_repaired_by_the_next_chunk(app, client, sealed):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    assert patch(client, token, 0, sealed[:CHUNK], csrf).status_code == 200
    # The server wrote (part of) the next chunk, then died before committing its offset.
    with part_path(app).open("ab") as fh:
        fh.write(b"\xff" * 5000)
    status = client.get(f"/uploads/{token}").get_json()
    assert status["offset"] == CHUNK  # what the browser asks after the restart
    assert patch(client, token, CHUNK, sealed[CHUNK : 2 * CHUNK], csrf).status_code == 200
    assert patch(client, token, 2 * CHUNK, sealed[2 * CHUNK :], csrf).get_json()["complete"]
    assert part_file(app, token) == sealed


def test_a_lost_part_file_makes_the_upload_unknown(app, client, database_url, sealed):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    part_path(app).unlink()
    response = patch(client, token, 0, sealed[:CHUNK], csrf)
    assert response.status_code == 404
    assert upload_rows(database_url) == []


def test_a_cut_connection_keeps_nothing_of_the_chunk(app, client, sealed, monkeypatch):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    assert patch(client, token, 0, sealed[:CHUNK], csrf).status_code == 200
    # The body ends early: the declared length is longer than what arrives.
    response = client.patch(
        f"/uploads/{token}",
        input_stream=io.BytesIO(sealed[CHUNK : CHUNK + 5000]),
        environ_overrides={"CONTENT_LENGTH": "20000"},
        headers={"X-CSRF-Token": csrf, "Upload-Offset": str(CHUNK),
                 "Content-Type": "application/octet-stream"},
    )  # fmt: skip
    assert response.status_code == 400
    assert part_file(app, token) == sealed[:CHUNK]
    assert client.get(f"/uploads/{token}").get_json()["offset"] == CHUNK
    # ... and the client carries on from the offset.
    assert patch(client, token, CHUNK, sealed[CHUNK : 2 * CHUNK], csrf).status_code == 200


def test_an_upload_without_content_length_is_refused(app, client, sealed):
    csrf = csrf_token(client)
    token = new_upload(client, len(sealed), csrf)
    response = client.patch(
        f"/uploads/{token}",
        input_stream=io.BytesIO(sealed[:100]),
        environ_overrides={"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True},
        headers={"X-CSRF-Token": csrf, "Upload-Offset": "0",
                 "Content-Type": "application/octet-stream"},
    )  # fmt: skip
    assert response.status_code == 411
    assert "without its length" in response.get_json()["error"]


def test_without_keys_uploads_are_refused_but_can_be_deleted(make_app, database_url, tmp_path,
                                                             sealed, team_keys):  # fmt: skip
    good = make_app(database_url)
    csrf_client = good.test_client()
    csrf = csrf_token(csrf_client)
    token = new_upload(csrf_client, len(sealed), csrf)
    broken = make_app(database_url, keys_manifest=tmp_path / "missing.json")
    client = broken.test_client()
    with client.session_transaction() as session, csrf_client.session_transaction() as other:
        session.update(other)
    response = start(client, len(sealed), csrf)
    assert response.status_code == 503
    assert "no valid encryption key" in response.get_json()["error"]
    assert patch(client, token, 0, sealed[:CHUNK], csrf).status_code == 503
    assert client.get(f"/uploads/{token}").status_code == 200
    assert client.delete(f"/uploads/{token}", headers={"X-CSRF-Token": csrf}).status_code == 204
    for app in (good, broken):
        app.extensions["portal.source"].db.dispose()


def test_upload_errors_are_translated(pseudo_client, team_keys):
    csrf = csrf_token(pseudo_client)
    assert start(pseudo_client, "x", csrf).get_json()["error"].startswith("⟦The file could not")
    body, _ = attachment_envelope(team_keys)
    token = new_upload(pseudo_client, len(body), csrf)
    for response in (
        patch(pseudo_client, token, 5, body[:10], csrf),
        pseudo_client.get(f"/uploads/{'0' * 64}"),
        start(pseudo_client, len(body), "forged"),
    ):
        assert response.get_json()["error"].startswith("⟦"), response.get_json()
