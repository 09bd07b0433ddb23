"""`portal staff add|remove|reset-totp` and `portal serve staff`: output and errors."""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlparse

import pytest
from source_fixtures import BIN, SECRET, wait_until_serving
from source_fixtures import _free_port as free_port
from sqlalchemy import select

from portal import cli, staffauth
from portal.db import Database
from portal.models import StaffState, StaffUser


@pytest.fixture
def env(monkeypatch, sqlite_url, data_dir):
    monkeypatch.setenv("PORTAL_SECRET_KEY", SECRET)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("PORTAL_DATA_DIR", str(data_dir))
    return sqlite_url


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def row(url, name="amina"):
    db = Database(url)
    try:
        with db.session() as session:
            return session.scalar(select(StaffUser).where(StaffUser.name == name))
    finally:
        db.dispose()


def test_add_prints_the_enrolment_secret_and_the_provisioning_uri(capsys, env):
    code, out, err = run(capsys, "staff", "add", "amina")
    assert code == 0 and err == ""
    assert "staff account amina created" in out
    enrolment = re.search(r"enrolment secret for amina.*\n  (\S+)\n", out).group(1)
    uri = re.search(r"(otpauth://totp/\S+)", out).group(1)
    parsed = urlparse(uri)
    query = parse_qs(parsed.query)
    assert parsed.path == "/Reprisals%20portal:amina"
    assert query["issuer"] == ["Reprisals portal"]
    assert query["digits"] == ["6"] and query["period"] == ["30"]
    assert query["algorithm"] == ["SHA1"]
    assert f"  {query['secret'][0]}\n" in out  # also printed to be typed in
    stored = row(env)
    assert stored.state is StaffState.PENDING and stored.password_hash is None
    assert stored.enrolment_digest == staffauth.enrolment_digest(enrolment)
    assert enrolment.encode() not in stored.enrolment_digest


def test_add_refuses_a_taken_or_unusable_name(capsys, env):
    assert run(capsys, "staff", "add", "amina")[0] == 0
    code, out, err = run(capsys, "staff", "add", "amina")
    assert code == 1 and out == ""
    assert "portal: error: there is already an account named amina" in err
    assert "portal: hint:" in err
    for name in ("bad name", "x" * 65, ".hidden"):
        code, _, err = run(capsys, "staff", "add", name)
        assert code == 1 and "cannot be an account name" in err and "portal: hint: Use up" in err


def test_add_needs_the_secret_key(capsys, env, monkeypatch):
    monkeypatch.delenv("PORTAL_SECRET_KEY")
    code, out, err = run(capsys, "staff", "add", "amina")
    assert code == 1 and out == ""
    assert "portal: error: PORTAL_SECRET_KEY is not set" in err and "portal: hint:" in err
    assert row(env) is None


def test_add_on_a_database_that_was_not_upgraded(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PORTAL_SECRET_KEY", SECRET)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    code, _, err = run(capsys, "staff", "add", "amina")
    assert code == 1 and "portal: error: cannot use the database" in err
    assert "portal: hint: Check DATABASE_URL and run `portal db upgrade`." in err
    assert "Traceback" not in err


def test_remove(capsys, env):
    run(capsys, "staff", "add", "amina")
    code, out, _ = run(capsys, "staff", "remove", "amina")
    assert code == 0 and "staff account amina removed" in out
    assert row(env) is None
    code, out, err = run(capsys, "staff", "remove", "amina")
    assert code == 1 and out == ""
    assert "portal: error: there is no account named amina" in err and "portal: hint:" in err


def test_reset_totp_gives_a_new_secret_and_unlocks(capsys, env):
    run(capsys, "staff", "add", "amina")
    before = row(env)
    db = Database(env)
    with db.session() as session:
        user = session.scalar(select(StaffUser))
        user.failed_attempts, user.locked_until, user.totp_last_step = 10, 2_000_000_000, 7
        session.commit()
    db.dispose()
    code, out, err = run(capsys, "staff", "reset-totp", "amina")
    assert code == 0 and err == ""
    assert "has a new TOTP secret and is unlocked" in out and "otpauth://totp/" in out
    assert "enrolment secret" in out  # not enrolled yet, so a new one too
    after = row(env)
    assert after.totp_secret != before.totp_secret
    assert after.enrolment_digest != before.enrolment_digest
    assert (after.failed_attempts, after.locked_until, after.totp_last_step) == (0, 0, None)
    code, _, err = run(capsys, "staff", "reset-totp", "nobody")
    assert code == 1 and "portal: error: there is no account named nobody" in err


def test_staff_needs_an_action_and_a_name(capsys, env):
    code, _, err = run(capsys, "staff", "add")
    assert code == 2 and "portal staff add NAME" in err and "portal: error:" in err
    code, _, err = run(capsys, "staff", "promote", "amina")
    assert code == 2 and "portal: error:" in err


def test_serve_staff_refuses_to_start_without_a_secret(capsys, env, monkeypatch):
    monkeypatch.delenv("PORTAL_SECRET_KEY")
    code, out, err = run(capsys, "serve", "staff", "--port", "1")
    assert code == 1 and out == ""
    assert "portal: error: PORTAL_SECRET_KEY is not set" in err


def fetch(url, deadline):
    """GET ``url``, retrying while the server is still binding its port."""
    while True:
        try:
            with urllib.request.urlopen(url) as response:  # noqa: S310
                response.read()
                return response
        except urllib.error.URLError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_serve_staff_serves_the_login_page_without_an_access_log(env, tmp_path):
    env_vars = {**os.environ, "PORTAL_SECRET_KEY": SECRET, "DATABASE_URL": env}
    port, log = free_port(), tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BIN / "portal", "serve", "staff", "--port", str(port)],
            env=env_vars, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until_serving(proc, port, log, b"serving the staff interface")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as response:
            assert response.status == 200
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            assert "portal_staff=" in response.headers["Set-Cookie"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    output = log.read_text()
    assert f"http://localhost:{port}/" in output
    assert "127.0.0.1" not in output and "GET" not in output
