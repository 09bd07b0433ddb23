"""Fixtures and helpers for the source interface, storage and migration tests.

Real crypto throughout: the team's keys are desk key files (``desk_keys``),
envelopes are sealed with ``portal.envelope`` and opened with the secret
keys. Databases are SQLite files in the test's data directory and databases
on a real PostgreSQL server (``pg.postgres_server``), upgraded once per
session with the project's migrations and emptied after each test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from nacl.public import PrivateKey
from pg import PostgresServer
from sqlalchemy import create_engine, func, select, text
from werkzeug.test import TestResponse

from portal import envelope, keyfile, migrate, receipt, replykey, report
from portal.config import PROJECT_ROOT, Config
from portal.envelope import SealPath
from portal.models import Submission, Thread
from portal.source import create_app

SECRET = secrets.token_urlsafe(32)
MASK_KEY = replykey.mask_key(SECRET.encode())  # masks reply keys at rest under SECRET
BIN = Path(sys.executable).parent
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Team:
    """The keys the test portal seals to (A and B), an outsider (C), and the manifest."""

    manifest: Path
    public_keys: tuple[bytes, ...]
    identities: tuple[PrivateKey, ...]
    outsider: bytes


@pytest.fixture(scope="session")
def team_keys(desk_keys: Any, desk_signer: Any, tmp_path_factory: pytest.TempPathFactory) -> Team:
    folder = tmp_path_factory.mktemp("team")
    active = desk_keys[:2]
    entries = [k.recipient.to_json() for k in active]
    # The desk's signing key too: the staff interface checks return bundles with it, and the
    # replies page checks each reply with it.
    manifest = {"version": 1, "recipients": entries, "signing_keys": [desk_signer.entry.to_json()]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    identities = tuple(keyfile.load(k.secret_file, k.passphrase).private_key for k in active)
    publics = tuple(k.recipient.public_key for k in active)
    return Team(folder / "manifest.json", publics, identities, desk_keys[2].recipient.public_key)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "portal.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    """One upgraded PostgreSQL database for the session (``database_url`` empties it)."""
    name = postgres_server.create_database()
    migrate.upgrade(postgres_server.url(name))
    return name


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def sqlite_url(data_dir: Path, sqlite_template: Path) -> str:
    """A fresh, upgraded SQLite database inside the data directory (as by default)."""
    shutil.copy(sqlite_template, data_dir / "portal.sqlite3")
    return f"sqlite:///{data_dir / 'portal.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[str]:
    """An upgraded database with no rows: SQLite, then PostgreSQL (emptied after each test)."""
    if request.param == "sqlite":
        yield sqlite_url
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.url(request.getfixturevalue("postgres_template"))
    yield url
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            tables = "uploads, replies, deleted_replies, submissions, threads, staff_users"
            conn.execute(text(f"TRUNCATE {tables}"))
    finally:
        engine.dispose()


def make_config(team: Team, data_dir: Path, url: str, **changes: Any) -> Config:
    config = Config(
        keys_manifest=team.manifest,
        data_dir=data_dir,
        database_url=url,
        secret_key=SECRET.encode(),
    )
    return replace(config, **changes)


@pytest.fixture
def make_app(team_keys: Team, data_dir: Path) -> Callable[..., Flask]:
    """``make_app(url, **config_changes)``: the source app on the test's data directory."""

    def make(url: str, **changes: Any) -> Flask:
        # Not in testing mode: errors are handled as in production, and CSRF is on.
        return create_app(make_config(team_keys, data_dir, url, **changes))

    return make


@pytest.fixture
def app(make_app: Callable[..., Flask], database_url: str) -> Iterator[Flask]:
    """The source app on SQLite, then on PostgreSQL."""
    application = make_app(database_url)
    yield application
    application.extensions["portal.source"].db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def sqlite_app(make_app: Callable[..., Flask], sqlite_url: str) -> Flask:
    """The source app on SQLite only, for tests that do not concern the database."""
    return make_app(sqlite_url)


@pytest.fixture
def sqlite_client(sqlite_app: Flask) -> FlaskClient:
    return sqlite_app.test_client()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(
    proc: subprocess.Popen[bytes], port: int, log: Path, marker: bytes, seen: int = 0
) -> None:
    """Wait (30 s at most) until ``proc`` has logged ``marker`` more than ``seen`` times and
    its port accepts connections: the line is printed just before the port is bound."""
    deadline = time.monotonic() + 30
    while log.read_bytes().count(marker) <= seen or not _listening(port):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running_source(settings: dict[str, str], workdir: Path) -> Iterator[tuple[str, Path]]:
    """`portal serve source` in a subprocess on 127.0.0.1 with ``settings`` in its environment.

    Migrates its database first; yields the URL and the file holding its
    output (for the tests that check what it logs); stops it afterwards.
    """
    env = {**os.environ, **settings}
    if "DATABASE_URL" not in settings:
        env.pop("DATABASE_URL", None)
    subprocess.run([BIN / "portal", "db", "upgrade"], env=env, check=True, capture_output=True)
    port, log = _free_port(), workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [BIN / "portal", "serve", "source", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
        )  # fmt: skip
    try:
        wait_until_serving(proc, port, log, b"serving the source interface")
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def source_server(
    tmp_path_factory: pytest.TempPathFactory, team_keys: Team
) -> Iterator[tuple[str, Path]]:
    """One source server per test module: URL and output."""
    tmp_path = tmp_path_factory.mktemp("source-server")
    settings = {"PORTAL_SECRET_KEY": SECRET, "PORTAL_KEYS": str(team_keys.manifest),
                "PORTAL_DATA_DIR": str(tmp_path / "served")}  # fmt: skip
    with running_source(settings, tmp_path) as running:
        yield running


# Helpers -----------------------------------------------------------------------------


def csrf_token(client: FlaskClient) -> str:
    """Open the form (which sets the session cookie) and return its CSRF token."""
    page = client.get("/report").get_data(as_text=True)
    match = CSRF.search(page)
    assert match, "the form has no CSRF token"
    return match.group(1)


def reply_key() -> bytes:
    return bytes(PrivateKey.generate().public_key)


def masked(lookup_digest: bytes, clear: bytes) -> bytes:
    """A reply public key as a portal running with ``SECRET`` stores it for this digest."""
    return replykey.mask(MASK_KEY, lookup_digest, clear)


def clear_reply_key(thread: Any) -> bytes:
    """The clear reply public key of a ``threads`` row (a mapping or a ``Thread``) stored
    under ``SECRET``."""
    get = thread.get if isinstance(thread, dict) else lambda name: getattr(thread, name)
    return replykey.unmask(MASK_KEY, bytes(get("lookup_digest")), bytes(get("reply_public_key")))


def token_hex() -> str:
    return secrets.token_bytes(32).hex()


def browser_envelope(team: Team, document: dict[str, Any] | None = None, **kw: Any) -> bytes:
    """What form.js sends: a report document sealed with path BROWSER to the team's keys."""
    document = document or report.document({"account": "test"}, reply_key(), "browser")
    keys = kw.get("keys", team.public_keys)
    path = kw.get("path", SealPath.BROWSER)
    return envelope.seal(json.dumps(document).encode(), list(keys), path)


def upload(
    client: FlaskClient,
    body: bytes,
    *,
    csrf: str | None = None,
    token: str | None = None,
    reply: str | None = None,
    content_type: str = "application/octet-stream",
    drop: tuple[str, ...] = (),
) -> TestResponse:
    """POST ``body`` to /report/sealed as form.js does; ``drop`` leaves headers out."""
    headers = {
        "X-CSRFToken": csrf if csrf is not None else csrf_token(client),
        "X-Lookup-Token": token if token is not None else token_hex(),
        "X-Reply-Key": reply if reply is not None else base64.b64encode(reply_key()).decode(),
        "Content-Type": content_type,
    }
    for name in drop:
        headers.pop(name)
    return client.post("/report/sealed", data=body, headers=headers)


def answers(**overrides: Any) -> dict[str, Any]:
    """A complete set of valid answers, as the browser posts them (checkbox groups as lists)."""
    values: dict[str, Any] = {
        "target_kind": "individual",
        "target_role": ["defender", "lawyer"],
        "target_gender": "woman",
        "submitter_relation": "self",
        "un_body": ["hrc", "treaty_body"],
        "un_body_name": "Human Rights Committee",
        "cooperation_kind": ["communication"],
        "acts": ["threats", "surveillance"],
        "setting": "both",
        "perpetrator": "state",
        "country": "Utopia",
        "when_month": "11",
        "when_year": "2025",
        "when_approximate": "on",
        "ongoing_risk": "yes",
        "urgent": "on",
        "consent_informed": "yes",
        "consent_publication": "anonymous",
        "consent_raise_with_state": "no",
        "consent_reply": "yes",
        "reported_before": "no",
        "reported_where": "nowhere else",
        "account": "They came at night.",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def post_plain(
    client: FlaskClient, values: dict[str, Any], *, consent: bool = True, csrf: str | None = None
) -> TestResponse:
    data = dict(values)
    data["csrf_token"] = csrf if csrf is not None else csrf_token(client)
    if consent:
        data["server_seal_consent"] = "yes"
    return client.post("/report/plain", data=data)


@dataclass(frozen=True)
class Snapshot:
    threads: int
    submissions: int
    files: tuple[str, ...]


def snapshot(app: Flask) -> Snapshot:
    """Row counts and every file under the data directory (the SQLite file excepted)."""
    state = app.extensions["portal.source"]
    with state.db.session() as session:
        threads = session.scalar(select(func.count()).select_from(Thread)) or 0
        submissions = session.scalar(select(func.count()).select_from(Submission)) or 0
    data_dir: Path = state.config.data_dir
    files = tuple(
        sorted(
            str(p.relative_to(data_dir))
            for p in data_dir.rglob("*")
            if p.is_file() and not p.name.startswith("portal.sqlite3")
        )
    )
    return Snapshot(threads, submissions, files)


def receipt_of(page: str) -> str:
    match = re.search(r"data-receipt>([^<]+)<", page)
    assert match, "no receipt on the page"
    receipt.normalize(match.group(1))
    return match.group(1)


def rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the portal's tables, for exact comparisons."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: [dict(r._mapping) for r in conn.execute(select(t))]
                for t in (Thread.__table__, Submission.__table__)
            }
    finally:
        engine.dispose()
