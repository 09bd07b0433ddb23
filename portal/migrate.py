"""Alembic migrations, run from code: ``portal db upgrade`` and the tests use these."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

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


@contextmanager
def _connected(url: str) -> Iterator[AlembicConfig]:
    engine = make_engine(url)
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
