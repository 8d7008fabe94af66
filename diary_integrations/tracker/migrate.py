"""Bring a database to the newest schema with Alembic, once per engine, safely under concurrency."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

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
    if engine.dialect.name == "sqlite":
        _upgrade_sqlite(engine, head)
        return
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7420019)"))
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
        _run(conn)


def _run(conn: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def _upgrade_sqlite(engine: Engine, head: str | None) -> None:
    """Migrate with foreign keys off: a migration that rebuilds a table (batch mode) drops the old one,
    and with foreign keys on that drop would cascade-delete every child row. The pragma only takes
    effect outside a transaction, so it is set on the connection before BEGIN IMMEDIATE, and the keys
    are checked before the commit."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection  # straight to sqlite3: no SQLAlchemy BEGIN before the pragma
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            conn.execution_options(diary_write=True)
            with conn.begin():
                if MigrationContext.configure(conn).get_current_revision() == head:
                    return
                _run(conn)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows without their parents: {broken[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")
