"""Bring a database to the newest schema with Alembic, once per engine, safely under concurrency."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from .database import write_transaction

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade_to_head(engine: Engine) -> None:
    """Apply pending migrations. Writers are serialised (SQLite's write lock, PostgreSQL's advisory
    lock), so several processes opening a new database at once migrate it exactly once."""
    head = head_revision()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7420019)"))
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
