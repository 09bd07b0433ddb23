"""`portal doctor` catches each misconfiguration it claims to catch, and says how to fix it."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from source_fixtures import SECRET, _free_port

from portal import cli, demo, doctor, migrate

SETTINGS = ("PORTAL_SECRET_KEY", "PORTAL_KEYS", "PORTAL_KEYS_MANIFEST", "PORTAL_DATA_DIR",
            "DATABASE_URL", "PORTAL_MIN_FREE_MIB", "PORTAL_TOR_SOCKS")  # fmt: skip


@pytest.fixture
def healthy(monkeypatch, team_keys, data_dir, sqlite_url) -> dict[str, str]:
    """A portal that passes every check: its settings, set in the environment (SQLite;
    the database checks run on PostgreSQL too)."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    settings = {"PORTAL_SECRET_KEY": SECRET, "PORTAL_KEYS": str(team_keys.manifest),
                "PORTAL_DATA_DIR": str(data_dir), "DATABASE_URL": sqlite_url,
                "PORTAL_MIN_FREE_MIB": "1"}  # fmt: skip
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return settings


def run(capsys) -> tuple[int, str, str]:
    code = cli.main(["doctor"])
    out, err = capsys.readouterr()
    return code, out, err


def errors_of(err: str) -> list[tuple[str, str]]:
    """(error, hint) pairs, in order; every error must be followed by its hint."""
    lines = err.splitlines()
    pairs = []
    for i, line in enumerate(lines):
        if line.startswith("portal doctor: error: "):
            assert lines[i + 1].startswith("portal doctor: hint: "), err
            pairs.append((line.removeprefix("portal doctor: error: "),
                          lines[i + 1].removeprefix("portal doctor: hint: ")))  # fmt: skip
    assert len(pairs) == sum(1 for line in lines if "error:" in line), err
    return pairs


def expect_one(capsys, *words: str) -> str:
    code, out, err = run(capsys)
    found = errors_of(err)
    assert code == 1 and len(found) == 1, err
    message, hint = found[0]
    for word in words:
        assert word in message + " " + hint, (message, hint)
    assert "1 problem(s) found" in out
    return hint


def test_a_healthy_portal_passes_and_its_fingerprints_are_printed(healthy, capsys, team_keys):
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    manifest = json.loads(team_keys.manifest.read_text())
    from portal.keys import load_manifest

    for key in load_manifest(team_keys.manifest).recipients:
        assert key.fingerprint in out
    assert len(manifest["recipients"]) == 2
    assert "no problem(s) found" in out
    assert "Tor not checked" in out


@pytest.mark.parametrize(
    ("secret", "words"),
    [
        (None, ("not set", "secrets.token_urlsafe")),
        ("short", ("too short", "secrets.token_urlsafe")),
        ("a" * 64, ("does not look random",)),
        ("development-only-" + "x1y2z3w4v5u6t7s8r9q0" * 3, ("development secret",)),
    ],
)
def test_a_missing_weak_or_development_secret(healthy, monkeypatch, capsys, secret, words):
    if secret is None:
        monkeypatch.delenv("PORTAL_SECRET_KEY")
    else:
        monkeypatch.setenv("PORTAL_SECRET_KEY", secret)
    expect_one(capsys, *words)


def test_a_missing_manifest(healthy, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PORTAL_KEYS", str(tmp_path / "nowhere.json"))
    expect_one(capsys, "nowhere.json")


def test_a_manifest_without_an_active_key(healthy, monkeypatch, capsys, tmp_path):
    empty = tmp_path / "manifest.json"
    empty.write_text(json.dumps({"version": 1, "recipients": []}))
    monkeypatch.setenv("PORTAL_KEYS", str(empty))
    expect_one(capsys, "key manifest")


def test_a_demo_key(healthy, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PORTAL_KEYS", str(demo.ensure_demo_key(tmp_path / "demo")))
    expect_one(capsys, "DEMO", "keys/README.md")


def test_a_missing_data_directory(healthy, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "missing"))
    assert "install -d -m 0700" in expect_one(capsys, "missing")


def test_a_data_directory_that_is_a_file(healthy, monkeypatch, capsys, tmp_path):
    (tmp_path / "file").write_bytes(b"")
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "file"))
    expect_one(capsys, "not a directory")


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o777])
def test_a_data_directory_others_can_read(healthy, capsys, data_dir, mode):
    data_dir.chmod(mode)
    assert "chmod 0700" in expect_one(capsys, "other users", f"{mode:04o}")


def test_files_inside_that_others_can_read(healthy, capsys, data_dir):
    (data_dir / "envelopes").mkdir(mode=0o700)
    leaked = data_dir / "envelopes" / "copied.env"
    leaked.write_bytes(b"ciphertext")
    leaked.chmod(0o644)
    assert "chmod -R go=" in expect_one(capsys, "1 file(s) or folder(s)", "not private")
    leaked.chmod(0o600)
    assert run(capsys)[0] == 0


def test_a_database_file_others_can_read(healthy, capsys, data_dir):
    database = data_dir / "portal.sqlite3"
    assert database.stat().st_mode & 0o777 == 0o600  # as the portal creates it
    database.chmod(0o644)
    assert "chmod -R go=" in expect_one(capsys, "1 file(s) or folder(s)", "not private")


def test_a_data_directory_owned_by_someone_else(healthy, capsys, data_dir):
    if os.geteuid() != 0:
        pytest.skip("only root can give the directory to another user")
    os.chown(data_dir, 65534, 65534)
    try:
        assert "chown" in expect_one(capsys, "owned by uid 65534")
    finally:
        os.chown(data_dir, 0, 0)


def test_an_unwritable_data_directory(healthy, capsys, data_dir, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Read-only file system")

    # Root may write anywhere, so the refusal a read-only mount gives is simulated here.
    monkeypatch.setattr(doctor.tempfile, "TemporaryFile", refuse)
    expect_one(capsys, "not writable", "ReadWritePaths")


def test_an_unreachable_database(healthy, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://portal@127.0.0.1:{_free_port()}/x")
    expect_one(capsys, "cannot reach the database", "DATABASE_URL")


def test_a_database_without_tables(healthy, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert expect_one(capsys, "revision None") == "Run: portal db upgrade"


def test_a_database_behind_the_newest_migration(healthy, monkeypatch, capsys, database_url):
    monkeypatch.setenv("DATABASE_URL", database_url)
    code, out, _ = run(capsys)
    assert code == 0 and "is reachable and at revision" in out
    migrate.downgrade(database_url, "-1")
    try:
        expect_one(capsys, "not", str(migrate.head()), "portal db upgrade")
    finally:
        migrate.upgrade(database_url)


def test_too_little_free_disk(healthy, monkeypatch, capsys):
    monkeypatch.setenv("PORTAL_MIN_FREE_MIB", str(10**9))
    expect_one(capsys, "MiB free", "PORTAL_MIN_FREE_MIB")


@pytest.mark.parametrize("year", [2001, 2200])
def test_a_clock_that_is_off(healthy, monkeypatch, capsys, year):
    monkeypatch.setattr(doctor, "utcnow", lambda: dt.datetime(year, 6, 1, tzinfo=dt.UTC))
    expect_one(capsys, f"{year}-06-01", "timedatectl")


def test_the_clock_floor_is_the_newest_migration():
    assert doctor.newest_migration_day() <= dt.datetime.now(dt.UTC).date()
    assert doctor.newest_migration_day().year >= 2026


@pytest.mark.parametrize("value", ["9050", "localhost:", ":9050", "127.0.0.1:99999", "x:y"])
def test_a_malformed_tor_setting(healthy, monkeypatch, capsys, value):
    monkeypatch.setenv("PORTAL_TOR_SOCKS", value)
    expect_one(capsys, "HOST:PORT")


def test_tor_not_listening(healthy, monkeypatch, capsys):
    monkeypatch.setenv("PORTAL_TOR_SOCKS", f"127.0.0.1:{_free_port()}")
    expect_one(capsys, "Tor is not reachable", "SocksPort")


@pytest.fixture
def not_tor() -> Iterator[int]:
    """A listener on 127.0.0.1 that answers like a web server, not like Tor."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(16)
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    worker = threading.Thread(target=answer, daemon=True)
    worker.start()
    yield port
    server.close()
    worker.join(timeout=5)


def test_something_else_on_the_tor_port(healthy, monkeypatch, capsys, not_tor):
    monkeypatch.setenv("PORTAL_TOR_SOCKS", f"127.0.0.1:{not_tor}")
    expect_one(capsys, "did not answer as Tor")


def tor_binary() -> str:
    found = shutil.which("tor") or shutil.which("tor", path="/usr/sbin:/usr/bin")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tor is missing in CI: scripts/sysdeps.sh installs Debian's tor")
        pytest.skip("tor is not installed here (apt-get install tor; CI installs it)")
    return found


@pytest.fixture
def real_tor(tmp_path: Path) -> Iterator[int]:
    """Debian's tor with a SocksPort, whose only bridge is a closed port on 127.0.0.1,
    so that it reaches out to nothing (DisableNetwork would close the SocksPort too)."""
    port, data, log = _free_port(), tmp_path / "tor", tmp_path / "tor.log"
    data.mkdir(mode=0o700)
    torrc = tmp_path / "torrc"
    lines = [
        f"SocksPort 127.0.0.1:{port}",
        f"DataDirectory {data}",
        "UseBridges 1",
        f"Bridge 127.0.0.1:{_free_port()}",
        "SafeLogging 1",
        f"Log notice file {log}",
    ]
    torrc.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([tor_binary(), "-f", str(torrc), "--defaults-torrc", "/dev/null"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and b"Opened Socks listener" in log.read_bytes()):
            assert proc.poll() is None, log.read_text() if log.exists() else "tor stopped"
            assert time.monotonic() < deadline, "tor did not open its SocksPort"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_running_tor_is_found(healthy, monkeypatch, capsys, real_tor):
    monkeypatch.setenv("PORTAL_TOR_SOCKS", f"127.0.0.1:{real_tor}")
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    assert f"Tor answers on 127.0.0.1:{real_tor}" in out


def test_several_problems_are_all_reported(healthy, monkeypatch, capsys, tmp_path, data_dir):
    monkeypatch.delenv("PORTAL_SECRET_KEY")
    monkeypatch.setenv("PORTAL_KEYS", str(tmp_path / "nowhere.json"))
    data_dir.chmod(0o755)
    monkeypatch.setenv("PORTAL_MIN_FREE_MIB", str(10**9))
    code, out, err = run(capsys)
    assert code == 1 and len(errors_of(err)) == 4
    assert "4 problem(s) found" in out


def test_an_unusable_setting_stops_the_checks_that_need_it(healthy, monkeypatch, capsys):
    monkeypatch.setenv("PORTAL_MIN_FREE_MIB", "lots")
    expect_one(capsys, "PORTAL_MIN_FREE_MIB")
