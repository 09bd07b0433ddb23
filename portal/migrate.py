"""Alembic migrations, run from code: ``portal db upgrade`` and the tests use these."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, event

from portal.config import PROJECT_ROOT
from portal.db import make_engine

MIGRATIONS = PROJECT_ROOT / "migrations"


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic's configuration for ``migrations/``, bound to ``connection`` when given."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _transactional_ddl(engine: Engine) -> None:
    """Make SQLite run a whole upgrade in one transaction, its DDL included.

    The sqlite3 module begins a transaction only before DML, so the tables
    an earlier revision created stayed behind when a later one failed (say,
    0008 without ``PORTAL_SECRET_KEY``) while the recorded revision was rolled
    back; the next try then failed on them. SQLAlchemy's documented recipe:
    the driver does no transaction handling, and each transaction begins
    explicitly.
    """

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


@contextmanager
def _connected(url: str) -> Iterator[AlembicConfig]:
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        _transactional_ddl(engine)
    try:
        with engine.begin() as connection:
            yield alembic_config(connection)
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision``."""
    with _connected(url) as cfg:
        command.upgrade(cfg, revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision``."""
    with _connected(url) as cfg:
        command.downgrade(cfg, revision)


def head() -> str | None:
    """The newest revision in ``migrations/``."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def revision_of(engine: Engine) -> str | None:
    """The revision the database behind ``engine`` is at (``None`` when it has none)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at (``None`` when it has none)."""
    engine = make_engine(url)
    try:
        return revision_of(engine)
    finally:
        engine.dispose()
