"""The database engine and its sessions (SQLAlchemy only; no web framework here).

SQLite by default, PostgreSQL in larger deployments; both are tested. Bound
parameters are hidden from SQLAlchemy's error messages, so that an error
logged by the server never carries a lookup digest or a reply key.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; FULL makes every commit durable;
    # secure_delete zeroes a purged row's bytes instead of leaving them in a free page.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _private_file(database: str | None) -> Callable[..., None]:
    """A ``do_connect`` hook that creates the SQLite file 0600 before SQLite opens it.

    SQLite would create it with the umask's mode (usually 0644), and its
    journal takes the database file's mode; an existing file is left as it is
    (``portal doctor`` reports one that others can read).
    """

    def create(*_args: Any) -> None:
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        # Already there, or SQLite itself reports why it cannot open it.
        with contextlib.suppress(OSError):
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    return create


def make_engine(url: str) -> Engine:
    """An engine for ``url`` that never puts bound values into its error messages."""
    engine = create_engine(url, hide_parameters=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "do_connect", _private_file(engine.url.database))
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def describe(url: str) -> str:
    """``url`` without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


class Database:
    """One engine and its session factory, shared by the requests of one application."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for one unit of work (one request); always closed, never left open."""
        with self._sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
