"""Alembic environment: runs on the connection the tracker hands over (see tracker/migrate.py)."""

from alembic import context

from diary_integrations.tracker.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
