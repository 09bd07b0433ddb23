"""The staff dashboard's export download, on SQLite and PostgreSQL, through the real desk."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from source_fixtures import Team
from staff_fixtures import Account, Clock, add_account, form_token, sign_in
from test_bundle import BROWSER_FIELDS, import_args, submit_browser, submit_plain

from portal import bundle, staffauth, storage
from portal.desk.cli import main
from portal.models import Submission


def figure(page: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', page)
    assert match, f"no figure {name}"
    return match.group(1)


def enrolled(app: Flask, clock: Clock) -> Account:
    account = add_account(app)
    assert account.enrolment_secret
    current = app.extensions["portal.staff"]
    outcome = staffauth.enrol(current.db, current.secret_key, account.name,
                              account.enrolment_secret, account.password,
                              account.code(clock.now))  # fmt: skip
    assert outcome.result is staffauth.Result.OK
    clock.advance(staffauth.TOTP_STEP)
    return account


def signed_in(app: Flask, clock: Clock) -> FlaskClient:
    client = app.test_client()
    response = sign_in(client, enrolled(app, clock), clock)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def download(client: FlaskClient, csrf: str | None = None) -> bytes:
    token = form_token(client, "/") if csrf is None else csrf
    response = client.post("/export", data={"csrf_token": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert response.mimetype == "application/x-tar"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="reprisals-export-{today}.tar"'
    )
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_data()


def envelope_files(data_dir: Path) -> dict[str, bytes]:
    folder = data_dir / storage.ENVELOPE_DIR
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture()
def apps(make_app, make_staff_app, database_url) -> tuple[Flask, Flask]:
    """The source and staff interfaces on the same database and data directory."""
    return make_app(database_url), make_staff_app(database_url)


def test_the_export_needs_a_login(apps, data_dir):
    _, staff = apps
    client = staff.test_client()
    response = client.post("/export", data={"csrf_token": form_token(client)})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login")
    assert not (data_dir / storage.ENVELOPE_DIR).exists() or not any(
        (data_dir / storage.ENVELOPE_DIR).iterdir()
    )


def test_the_export_needs_a_csrf_token(apps, clock, team_keys):
    source, staff = apps
    submit_browser(source.test_client(), team_keys, BROWSER_FIELDS)
    client = signed_in(staff, clock)
    for data in ({}, {"csrf_token": "forged"}):
        response = client.post("/export", data=data)
        assert response.status_code == 400
        assert "application/x-tar" not in response.content_type
    page = client.get("/").get_data(as_text=True)
    assert figure(page, "new") == "1" and figure(page, "exported") == "0"


def test_the_download_is_a_bundle_the_desk_imports(apps, clock, team_keys: Team, data_dir,
                                                   tmp_path, desk_keys):  # fmt: skip
    source, staff = apps
    source_client = source.test_client()
    submit_browser(source_client, team_keys, BROWSER_FIELDS)
    submit_plain(source_client)
    client = signed_in(staff, clock)
    before = client.get("/").get_data(as_text=True)
    assert (figure(before, "waiting"), figure(before, "new"), figure(before, "exported")) == (
        "2", "2", "0",
    )  # fmt: skip
    stored = envelope_files(data_dir)

    first = download(client)
    path = tmp_path / "export.tar"
    path.write_bytes(first)
    with bundle.read_export(path) as opened:
        ids = sorted(item.id for item in opened.items)
        assert len(ids) == 2
        for item in opened.items:
            assert opened.read(item) == stored[f"{item.id}.env"]

    after = client.get("/").get_data(as_text=True)
    assert (figure(after, "waiting"), figure(after, "new"), figure(after, "exported")) == (
        "2", "0", "2",
    )  # fmt: skip
    # Exporting deletes nothing, and exporting again gives the same items (the same bytes).
    assert envelope_files(data_dir) == stored
    assert download(client) == first
    with staff.extensions["portal.staff"].db.session() as session:
        rows = session.query(Submission).all()
        assert sorted(r.id for r in rows) == ids
        assert {r.exported_on for r in rows} == {dt.datetime.now(dt.UTC).date()}

    code = main([str(a) for a in import_args(tmp_path / "store", path, desk_keys)])
    assert code == 0
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_missing_envelope_file_gives_an_error_page_not_a_bundle(apps, clock, team_keys,
                                                                  data_dir, capsys):  # fmt: skip
    source, staff = apps
    submit_browser(source.test_client(), team_keys, BROWSER_FIELDS)
    for path in (data_dir / storage.ENVELOPE_DIR).iterdir():
        path.unlink()
    client = signed_in(staff, clock)
    response = client.post("/export", data={"csrf_token": form_token(client, "/")})
    assert response.status_code == 500
    assert "could not be written" in response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    page = client.get("/").get_data(as_text=True)
    assert figure(page, "exported") == "0"
    assert [p.name for p in (data_dir / storage.ENVELOPE_DIR).iterdir()] == []
