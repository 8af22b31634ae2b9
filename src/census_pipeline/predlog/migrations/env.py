"""Alembic's entry point, run by `predlog.migrate.upgrade` with an open connection.

The connection comes from the caller (never from an ini file), so the service, the CLI and the
tests migrate whatever database they were pointed at, with nothing on disk to configure.
"""

from __future__ import annotations

from alembic import context

from census_pipeline.predlog.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters tables by copying them; Alembic's batch mode does that for later migrations.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
