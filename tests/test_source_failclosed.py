"""Fail closed: no secret, no usable key, no storage; the portal refuses and says why.

Without a strong secret ``create_app`` refuses to start. Without a usable
key manifest it starts, says on every page why reports cannot be sent, and
answers 503 to the form and to both submission endpoints. When storage
fails, the submitter is told that nothing was stored, and nothing was.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
from source_fixtures import (
    SECRET,
    answers,
    browser_envelope,
    csrf_token,
    make_config,
    post_plain,
    snapshot,
    upload,
)

from portal import config, storage
from portal.source import app_from_env, create_app

REFUSAL = "cannot accept reports at the moment"


def test_create_app_refuses_to_start_without_a_secret(team_keys, data_dir, sqlite_url):
    cfg = replace(make_config(team_keys, data_dir, sqlite_url), secret_key=None)
    with pytest.raises(config.ConfigError, match="PORTAL_SECRET_KEY is not set") as err:
        create_app(cfg)
    assert "secrets.token_urlsafe(32)" in err.value.hint


@pytest.mark.parametrize(
    "secret",
    ["short", "a" * 80, "0123456789" * 4, "x" * 42 + "é", "has spaces in it " * 4],
)
def test_a_weak_or_malformed_secret_is_refused(secret):
    with pytest.raises(config.ConfigError, match="PORTAL_SECRET_KEY"):
        config.from_env({"PORTAL_SECRET_KEY": secret})


def unusable_manifests(tmp_path, team_keys) -> dict[str, object]:
    entry = json.loads(team_keys.manifest.read_text())["recipients"][0]
    retired = dict(entry, status="retired")
    return {
        "missing": tmp_path / "absent.json",
        "empty": {"version": 1, "recipients": []},
        "only-retired": {"version": 1, "recipients": [retired]},
        "bad-fingerprint": {"version": 1, "recipients": [dict(entry, fingerprint="00000")]},
        "not-json": "{",
    }


@pytest.fixture(params=["missing", "empty", "only-retired", "bad-fingerprint", "not-json",
                        "shipped"])  # fmt: skip
def keyless_app(request, make_app, database_url, tmp_path, team_keys, caplog):
    if request.param == "shipped":
        path = config.PROJECT_ROOT / "keys" / "manifest.json"
    else:
        content = unusable_manifests(tmp_path, team_keys)[request.param]
        path = tmp_path / "manifest.json"
        if isinstance(content, str):
            path.write_text(content)
        elif not isinstance(content, dict):
            path = content  # type: ignore[assignment]
        else:
            path.write_text(json.dumps(content))
    with caplog.at_level(logging.ERROR):
        app = make_app(database_url, keys_manifest=path)
    assert "submissions are refused" in caplog.text
    return app


def test_without_a_usable_key_every_submission_is_refused(keyless_app):
    client = keyless_app.test_client()
    landing = client.get("/")
    assert landing.status_code == 200 and REFUSAL in landing.get_data(as_text=True)
    form = client.get("/report")
    assert form.status_code == 503 and REFUSAL in form.get_data(as_text=True)
    assert 'id="report-form"' not in form.get_data(as_text=True)
    assert form.headers["Cache-Control"] == "no-store"
    sealed = client.post("/report/sealed", data=b"x", content_type="application/octet-stream")
    assert sealed.status_code == 503 and REFUSAL in sealed.get_json()["error"]
    plain = client.post("/report/plain", data=answers())
    assert plain.status_code == 503 and REFUSAL in plain.get_data(as_text=True)
    assert snapshot(keyless_app).submissions == 0 and snapshot(keyless_app).files == ()


def test_a_database_without_tables_stores_nothing_and_says_so(make_app, data_dir, team_keys,
                                                              caplog):  # fmt: skip
    with caplog.at_level(logging.WARNING):
        app = make_app(f"sqlite:///{data_dir / 'never-upgraded.sqlite3'}")
    assert "run `portal db upgrade`" in caplog.text
    client = app.test_client()
    response = upload(client, browser_envelope(team_keys))
    assert response.status_code == 503
    assert "nothing was kept" in response.get_json()["error"]
    plain = post_plain(client, answers())
    assert plain.status_code == 503 and "nothing was kept" in plain.get_data(as_text=True)
    envelopes = data_dir / storage.ENVELOPE_DIR
    assert not envelopes.exists() or not any(envelopes.iterdir())
    assert "could not be stored" in caplog.text


def test_an_unreachable_database_is_only_a_warning_at_start(make_app, team_keys, caplog):
    with caplog.at_level(logging.WARNING):
        app = make_app("postgresql+psycopg://u:pw@127.0.0.1:1/none")
    assert "cannot reach the database (OperationalError)" in caplog.text
    assert "pw" not in caplog.text.replace("portal", "")
    response = upload(app.test_client(), browser_envelope(team_keys))
    assert response.status_code == 503


def test_an_unwritable_data_directory_stores_nothing(app, client, team_keys):
    data_dir = app.extensions["portal.source"].config.data_dir
    (data_dir / storage.ENVELOPE_DIR).write_bytes(b"")  # a file where the directory should be
    response = upload(client, browser_envelope(team_keys))
    assert response.status_code == 503
    assert snapshot(app).submissions == 0


def test_an_unexpected_error_is_a_500_page_that_logs_no_detail(app, client, team_keys,
                                                               monkeypatch, caplog):  # fmt: skip
    detail = "DETAIL-" + "THAT-MUST-NOT-BE-LOGGED"

    def explode(*_args: object) -> None:
        raise RuntimeError(detail)

    monkeypatch.setattr(storage, "store", explode)
    caplog.set_level(logging.DEBUG)
    token = csrf_token(client)
    response = upload(client, browser_envelope(team_keys), csrf=token)
    assert response.status_code == 500
    assert "nothing was stored" in response.get_json()["error"]
    assert "RuntimeError" in caplog.text
    assert detail not in caplog.text
    assert "/report/sealed" not in caplog.text
    page = post_plain(client, answers(), csrf=token)
    assert page.status_code == 500 and "nothing was stored" in page.get_data(as_text=True)


def test_the_gunicorn_entry_point_reads_the_environment(monkeypatch, team_keys, data_dir):
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    monkeypatch.setenv("PORTAL_KEYS", str(team_keys.manifest))
    monkeypatch.setenv("PORTAL_DATA_DIR", str(data_dir))
    with pytest.raises(config.ConfigError, match="PORTAL_SECRET_KEY is not set"):
        app_from_env()
    monkeypatch.setenv("PORTAL_SECRET_KEY", "x" * 20)
    with pytest.raises(config.ConfigError, match="too short"):
        app_from_env()


def test_the_development_secret_of_make_run_is_flagged(make_app, sqlite_url, caplog):
    secret = b"development-only-" + SECRET.encode()
    with caplog.at_level(logging.WARNING):
        make_app(sqlite_url, secret_key=secret)
    assert "development secret of `make run`: never deploy it" in caplog.text
