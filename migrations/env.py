"""Alembic's environment: the portal's models are the target metadata.

``portal db upgrade`` passes its own connection (``config.attributes``);
run by hand (``alembic -c alembic.ini ...``) it connects to the database the
portal's configuration names (``DATABASE_URL`` or the default SQLite file).
"""

from __future__ import annotations

from alembic import context

from portal import config as portal_config
from portal.db import make_engine
from portal.models import Base

target_metadata = Base.metadata


def run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = make_engine(portal_config.from_env().database_url)
    with engine.begin() as own:
        run(own)
    engine.dispose()
