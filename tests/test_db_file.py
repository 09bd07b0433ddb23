"""The SQLite database file is created 0600 by the portal, whatever the umask."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from source_fixtures import make_config

from portal import migrate
from portal.db import Database
from portal.source import create_app


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """The common umask 022, under which SQLite itself would make the file 0644."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_db_upgrade_creates_the_file_0600(tmp_path, lax_umask):
    path = tmp_path / "portal.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    assert mode(path) == oct(0o600)
    assert migrate.current(f"sqlite:///{path}") == migrate.head()


def test_the_app_creates_the_file_0600_and_it_works(tmp_path, team_keys, lax_umask):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    url = f"sqlite:///{data / 'portal.sqlite3'}"
    app = create_app(make_config(team_keys, data, url))
    assert app.test_client().get("/report").status_code == 200
    assert mode(data / "portal.sqlite3") == oct(0o600)
    migrate.upgrade(url)  # an empty file made this way is a valid empty database
    assert migrate.current(url) == migrate.head()


def test_an_existing_file_keeps_its_mode(tmp_path, lax_umask):
    path = tmp_path / "portal.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    path.chmod(0o640)  # the operator's choice; portal doctor reports one others can read
    database = Database(f"sqlite:///{path}")
    database.engine.connect().close()
    database.dispose()
    assert mode(path) == oct(0o640)


def test_the_test_template_is_private_too(sqlite_url):
    assert mode(Path(sqlite_url.removeprefix("sqlite:///"))) == oct(0o600)
