"""The full loop, server to desk and back: export, import, return, upload, purge.

Through the real source and staff test clients and the real ``portal-desk``,
on SQLite and PostgreSQL. After the upload the acknowledged envelope files
and their rows are gone and no file under the data directory holds any of
their bytes; a damaged, replayed, partial or foreign bundle changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from staff_fixtures import form_token
from test_bundle import BROWSER_FIELDS, import_args, submit_browser, submit_plain
from test_staff_export import apps, download, figure, signed_in

from portal import returnbundle, storage
from portal.desk.cli import main
from portal.models import Submission, Thread
from portal.staff import dashboard

__all__ = ["apps"]  # a fixture used here
DAY = dt.date(2026, 11, 23)


def upload(client: FlaskClient, data: bytes, csrf: str | None = None, name: str = "return.tar"):
    token = form_token(client, "/") if csrf is None else csrf
    return client.post(
        "/return",
        data={"csrf_token": token, "bundle": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def alert(page: str) -> str:
    start = page.index('role="alert">') + len('role="alert">')
    return html.unescape(page[start : page.index("<", start)])


def submission_ids(app: Flask) -> list[str]:
    with app.extensions["portal.staff"].db.session() as session:
        return sorted(session.scalars(select(Submission.id)))


def thread_count(app: Flask) -> int:
    with app.extensions["portal.staff"].db.session() as session:
        return len(session.scalars(select(Thread.id)).all())


def envelopes(data_dir: Path) -> dict[str, bytes]:
    folder = data_dir / storage.ENVELOPE_DIR
    return {p.stem: p.read_bytes() for p in sorted(folder.iterdir())}


def every_file(data_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in data_dir.rglob("*") if p.is_file()]


def desk_round(client: FlaskClient, tmp_path: Path, desk_keys, name: str = "r") -> bytes:
    """Download the export, import it on the desk, write the return bundle; its bytes."""
    exported = tmp_path / f"{name}-export.tar"
    exported.write_bytes(download(client))
    store = tmp_path / "store"
    assert main([str(a) for a in import_args(store, exported, desk_keys)]) == 0
    returned = tmp_path / f"{name}-return.tar"
    assert main(["return", "--store", str(store), "-o", str(returned)]) == 0
    return returned.read_bytes()


@pytest.fixture()
def loaded(apps, team_keys, clock):
    """Two browser-sealed reports and one sealed by the server; a signed-in staff client."""
    source, staff = apps
    source_client = source.test_client()
    submit_browser(source_client, team_keys, BROWSER_FIELDS)
    submit_browser(source_client, team_keys, {**BROWSER_FIELDS, "country": "Utopia"})
    submit_plain(source_client)
    return staff, signed_in(staff, clock)


def test_the_full_loop_purges_exactly_what_the_desk_acknowledged(loaded, data_dir, tmp_path,
                                                                  desk_keys):  # fmt: skip
    staff, client = loaded
    stored = envelopes(data_dir)
    assert len(stored) == 3 and thread_count(staff) == 3
    returned = desk_round(client, tmp_path, desk_keys)
    assert {a.id for a in returnbundle.parse(returned).acknowledgements} == set(stored)

    response = upload(client, returned)
    assert response.status_code == 200, response.get_data(as_text=True)
    page = " ".join(response.get_data(as_text=True).split())
    assert "3 acknowledged submissions deleted" in page
    assert figure(page, "waiting") == "0" and figure(page, "exported") == "0"
    assert submission_ids(staff) == []
    assert envelopes(data_dir) == {}
    # The threads stay (lookup digest and reply key only), for the replies to come.
    assert thread_count(staff) == 3
    # No file under the data directory (database included) holds any of the envelopes' bytes.
    files = every_file(data_dir)
    for data in stored.values():
        for start in range(0, len(data) - 64, 4096):
            sample = data[start : start + 64]
            assert not any(sample in f for f in files)

    # The same bundle again: a replay, refused, and it says so.
    again = upload(client, returned)
    assert again.status_code == 409
    assert "uploaded before" in alert(again.get_data(as_text=True))


def test_a_digest_mismatch_keeps_that_item(loaded, data_dir, tmp_path, desk_keys):
    staff, client = loaded
    returned = desk_round(client, tmp_path, desk_keys)
    victim = sorted(envelopes(data_dir))[1]
    path = storage.envelope_path(data_dir, victim)
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 1
    path.write_bytes(bytes(damaged))

    response = upload(client, returned)
    assert response.status_code == 200
    page = " ".join(response.get_data(as_text=True).split())
    assert "2 acknowledged submissions deleted" in page
    assert f'data-kept="{victim}"' in page
    assert submission_ids(staff) == [victim]
    assert envelopes(data_dir) == {victim: bytes(damaged)}


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        (lambda d: d[:700], 400, "cut short"),
        (lambda d: b"garbage " * 300, 400, "not a return bundle"),
        (lambda d: b"", 400, "empty"),
        (lambda d: d.replace(b'"version":1', b'"version":7'), 400, "not supported"),
        (lambda d: d[:10] + b"X" + d[11:], 400, "damaged"),
        (lambda d: d + b"trailing", 400, "after the end"),
    ],
)
def test_a_damaged_upload_changes_nothing(loaded, data_dir, tmp_path, desk_keys, change, status,
                                          fragment):  # fmt: skip
    staff, client = loaded
    returned = desk_round(client, tmp_path, desk_keys)
    before = (submission_ids(staff), envelopes(data_dir))
    response = upload(client, change(returned))
    assert response.status_code == status
    message = alert(response.get_data(as_text=True))
    assert "nothing was deleted" in message and fragment in message, message
    assert (submission_ids(staff), envelopes(data_dir)) == before


def test_a_partial_or_foreign_bundle_changes_nothing(loaded, data_dir):
    staff, client = loaded
    held = submission_ids(staff)
    stored = envelopes(data_dir)
    acks = [returnbundle.Acknowledgement(i, hashlib.sha256(stored[i]).digest()) for i in held]
    foreign = returnbundle.Acknowledgement("f" * 32, bytes(32))
    for chosen, fragment in (([*acks, foreign], "1 of the 4 items"),
                             ([foreign], "holds none")):  # fmt: skip
        out = io.BytesIO()
        returnbundle.write_return(chosen, out, DAY)
        response = upload(client, out.getvalue())
        assert response.status_code == 409
        assert fragment in alert(response.get_data(as_text=True))
        assert submission_ids(staff) == held and envelopes(data_dir) == stored
    empty = io.BytesIO()
    returnbundle.write_return([], empty, DAY)
    response = upload(client, empty.getvalue())
    assert response.status_code == 409 and "acknowledges nothing" in response.get_data(as_text=True)


def test_a_huge_upload_is_refused(loaded, data_dir):
    staff, client = loaded
    held = submission_ids(staff)
    response = upload(client, bytes(dashboard.MAX_RETURN_UPLOAD + 1))
    assert response.status_code == 413
    assert "larger than" in response.get_data(as_text=True)
    assert submission_ids(staff) == held


def test_the_upload_needs_a_login_a_csrf_token_and_a_file(apps, clock, team_keys, data_dir):
    source, staff = apps
    submit_browser(source.test_client(), team_keys, BROWSER_FIELDS)
    held = submission_ids(staff)
    anonymous = staff.test_client()
    response = upload(anonymous, b"x", csrf=form_token(anonymous))
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    client = signed_in(staff, clock)
    assert upload(client, b"x", csrf="forged").status_code == 400
    no_file = client.post("/return", data={"csrf_token": form_token(client, "/")},
                          content_type="multipart/form-data")  # fmt: skip
    assert no_file.status_code == 400
    assert "Choose the return bundle file" in alert(no_file.get_data(as_text=True))
    assert submission_ids(staff) == held
