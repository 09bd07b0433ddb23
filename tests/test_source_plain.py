"""POST /report/plain: the form without JavaScript, sealed in memory by the server after consent.

Runs on SQLite and on PostgreSQL. The happy path puts a unique marker in
the account and then looks for it everywhere the server writes: the
database (the SQLite file, or PostgreSQL's data directory), the data
directory and the captured logs.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import werkzeug.formparser
from html_dom import parse
from source_fixtures import (
    SECRET,
    answers,
    clear_reply_key,
    csrf_token,
    post_plain,
    receipt_of,
    rows,
    snapshot,
)
from werkzeug.exceptions import UnsupportedMediaType
from werkzeug.test import EnvironBuilder

from portal import envelope, receipt, report, storage
from portal.models import SealedBy
from portal.source.limits import MemoryOnlyRequest


def expected_fields(values: dict[str, Any]) -> dict[str, Any]:
    """What the sealed document holds for the posted ``values``."""
    fields: dict[str, Any] = {}
    for f in report.FIELDS:
        value = values.get(f.name)
        if f.kind == "flag" and value:
            fields[f.name] = True
        elif f.kind == "multi" and value:
            fields[f.name] = [v for v, _ in f.choices if v in value]
        elif isinstance(value, str) and value.strip():
            fields[f.name] = value.replace("\r\n", "\n").strip()
    return fields


def everything_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.rglob("*") if p.is_file())


def test_a_report_without_javascript_is_sealed_by_the_server(
    request, app, client, database_url, team_keys, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    marker = f"MARKER-{uuid.uuid4().hex}"
    values = answers(account=f"They came at night.\r\n{marker}\r\nЖурналист, محامية.",
                     un_body_name=f"Committee {marker}")  # fmt: skip
    response = post_plain(client, values)
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert response.headers["Cache-Control"] == "no-store"
    shown = receipt_of(page)
    assert page.index(shown) < page.index(envelope.fingerprint(team_keys.public_keys[0]))
    assert "Write the receipt down now" in page
    state = app.extensions["portal.source"]
    found = rows(database_url)
    (thread,) = found["threads"]
    (submission,) = found["submissions"]
    token = receipt.lookup_token(shown)
    digest_key = receipt.server_digest_key(SECRET.encode())
    assert bytes(thread["lookup_digest"]) == receipt.lookup_digest(digest_key, token)
    # Masked at rest under the server's secret: the clear key follows from the receipt.
    assert bytes(thread["reply_public_key"]) != receipt.reply_public_key(shown)
    assert clear_reply_key(thread) == receipt.reply_public_key(shown)
    assert submission["sealed_by"] is SealedBy.SERVER
    stored = storage.envelope_path(state.config.data_dir, submission["id"]).read_bytes()
    assert envelope.parse_header(stored).path is envelope.SealPath.SERVER
    for identity in team_keys.identities:
        document = json.loads(envelope.open_bytes(stored, [identity]))
        assert document == report.document(
            expected_fields(values), receipt.reply_public_key(shown), "server"
        )
    assert document["fields"]["account"] == f"They came at night.\n{marker}\nЖурналист, محامية."
    needle = marker.encode()
    assert needle not in everything_under(state.config.data_dir)  # envelopes and SQLite file
    if database_url.startswith("postgresql"):
        assert needle not in everything_under(request.getfixturevalue("postgres_server").data_dir)
    out, err = capsys.readouterr()
    assert marker not in out + err + caplog.text
    assert "127.0.0.1" not in out + err + caplog.text
    assert all(marker not in str(r.args) for r in caplog.records)


def test_the_receipt_is_new_each_time_and_never_stored(app, client, database_url):
    first = receipt_of(post_plain(client, answers()).get_data(as_text=True))
    second = receipt_of(post_plain(client, answers()).get_data(as_text=True))
    assert first != second
    dump = repr(rows(database_url)).encode()
    for shown in (first, second):
        assert receipt.normalize(shown).encode() not in dump
        assert receipt.lookup_token(shown) not in dump


def test_only_the_required_answers_are_enough(client, app):
    values = answers(**{f.name: None for f in report.FIELDS if not f.required})
    response = post_plain(client, values)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert snapshot(app).submissions == 1


def assert_form_again(app, response, *needles: str) -> str:
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page
    assert response.headers["Cache-Control"] == "no-store"
    assert 'id="report-form"' in page
    for needle in needles:
        assert needle in page, needle
    assert snapshot(app).submissions == 0 and snapshot(app).files == ()
    return page


def test_without_consent_the_form_comes_back_filled_in(app, client):
    values = answers(account="My account, kept for the second try")
    page = assert_form_again(app, post_plain(client, values, consent=False),
                             "tick the box", "My account, kept for the second try")  # fmt: skip
    form = parse(page).find("form", id="report-form")
    assert "checked" in form.find("input", name="target_kind", value="individual").attrs
    assert "checked" not in form.find("input", name="target_kind", value="").attrs
    assert "checked" in form.find("input", name="acts", value="threats").attrs
    assert "checked" not in form.find("input", name="acts", value="killing").attrs
    assert "checked" in form.find("input", name="urgent").attrs
    assert "selected" in form.find("option", value="11").attrs
    consent = form.find("input", name="server_seal_consent")
    assert consent.within("noscript")
    # The form can be sent again as it is: the session's CSRF token is still good.
    data = dict(values)
    data.update(csrf_token=form.find("input", name="csrf_token").attrs["value"],
                server_seal_consent="yes")  # fmt: skip
    assert client.post("/report/plain", data=data).status_code == 200


@pytest.mark.parametrize("consent", ["no", "on", "YES", ""])
def test_anything_but_an_explicit_yes_is_no_consent(app, client, consent):
    data = dict(answers(), server_seal_consent=consent, csrf_token=csrf_token(client))
    assert_form_again(app, client.post("/report/plain", data=data), "tick the box")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"account": None}, "account", "This is required."),
        ({"account": "   "}, "account", "This is required."),
        ({"consent_reply": None}, "consent_reply", "This is required."),
        ({"consent_publication": "maybe"}, "consent_publication", "Choose from the list."),
        ({"target_kind": "robot"}, "target_kind", "Choose from the list."),
        ({"acts": ["threats", "bribery"]}, "acts", "Choose from the list."),
        ({"when_month": "13"}, "when_month", "Choose from the list."),
        ({"when_year": "25"}, "when_year", "Give a year such as 2024."),
        ({"when_year": "２０２５"}, "when_year", "Give a year such as 2024."),
        ({"account": "x" * (report.MAX_ACCOUNT + 1)}, "account", "This is too long."),
        ({"country": "x" * 101}, "country", "This is too long."),
        ({"un_body_name": "x" * (report.MAX_TEXT + 1)}, "un_body_name", "This is too long."),
        ({"setting": ["online", "offline"]}, "setting", "Give one answer."),
    ],
)
def test_invalid_answers_come_back_with_a_message(app, client, changes, field, message):
    response = post_plain(client, answers(**changes))
    page = assert_form_again(app, response, message, "check the answers marked below")
    problem = parse(page).find(id=f"field-{field}-problem")
    assert message in problem.text


def test_an_account_at_the_limit_with_windows_line_breaks_is_accepted(app, client):
    # Browsers send CRLF; the browser's own script would send LF, which counts once.
    account = ("x" * 99 + "\r\n") * (report.MAX_ACCOUNT // 100)
    assert len(account.replace("\r\n", "\n")) == report.MAX_ACCOUNT
    assert post_plain(client, answers(account=account)).status_code == 200


def test_unknown_fields_are_refused_and_not_echoed(app, client):
    data = dict(answers(), server_seal_consent="yes", csrf_token=csrf_token(client),
                secret_extra="ECHO-ME-NOT")  # fmt: skip
    page = assert_form_again(app, client.post("/report/plain", data=data), "does not know")
    assert "ECHO-ME-NOT" not in page and "secret_extra" not in page


@pytest.mark.parametrize("csrf", ["", "not-a-token", "other-session", "missing"])
def test_a_missing_or_wrong_csrf_token_is_refused(app, client, csrf):
    csrf_token(client)
    token = {"other-session": csrf_token(app.test_client()), "missing": None}.get(csrf, csrf)
    data = dict(answers(), server_seal_consent="yes")
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/report/plain", data=data)
    assert response.status_code == 400
    assert "out of date or was already sent" in response.get_data(as_text=True)
    assert snapshot(app).submissions == 0 and snapshot(app).files == ()


def test_a_replayed_form_is_refused(app, client):
    token = csrf_token(client)
    assert post_plain(client, answers(), csrf=token).status_code == 200
    before = snapshot(app)
    response = post_plain(client, answers(), csrf=token)
    assert response.status_code == 400
    assert "already sent" in response.get_data(as_text=True)
    assert snapshot(app) == before


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_wrong_content_type_is_refused(app, client, content_type):
    body = json.dumps(dict(answers(), csrf_token=csrf_token(client), server_seal_consent="yes"))
    response = client.post("/report/plain", data=body, content_type=content_type)
    assert response.status_code == 415
    assert "does not accept" in response.get_data(as_text=True)
    assert snapshot(app).submissions == 0


def test_an_oversized_form_is_refused(app, client):
    limit = app.extensions["portal.source"].config.max_report_bytes
    data = dict(answers(), csrf_token=csrf_token(client), server_seal_consent="yes")
    data["account"] = "x" * (limit + 1)
    response = client.post("/report/plain", data=data)
    assert response.status_code == 413
    assert "larger than this portal accepts" in response.get_data(as_text=True)
    assert snapshot(app).submissions == 0 and snapshot(app).files == ()


@pytest.fixture
def no_temporary_files(monkeypatch):
    """Fail the test if anything creates a temporary file other than storage's ciphertext."""

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a temporary file was created for form data")

    for module in (tempfile, werkzeug.formparser):
        for name in ("TemporaryFile", "SpooledTemporaryFile", "NamedTemporaryFile"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, forbidden)


def test_a_large_form_is_parsed_in_memory(app, client, no_temporary_files):
    account = "é" * report.MAX_ACCOUNT  # 1.2 MB once percent-encoded
    response = post_plain(client, answers(account=account))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]


def test_a_file_under_an_unknown_name_is_refused_and_never_reaches_the_disk(
    app, client, no_temporary_files
):
    data = dict(answers(), csrf_token=csrf_token(client), server_seal_consent="yes")
    data["attachment"] = (io.BytesIO(b"a" * 600_000), "evidence.txt")
    response = client.post("/report/plain", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert "does not know" in response.get_data(as_text=True)
    assert snapshot(app).submissions == 0 and snapshot(app).files == ()


def test_the_request_class_refuses_file_parts_before_reading_them(no_temporary_files):
    builder = EnvironBuilder(
        method="POST", data={"field": "value", "file": (io.BytesIO(b"a" * 600_000), "f.txt")}
    )
    request = MemoryOnlyRequest(builder.get_environ())
    with pytest.raises(UnsupportedMediaType):
        _ = request.files
