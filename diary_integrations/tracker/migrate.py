"""Bring a database to the newest schema with Alembic, once per engine, safely under concurrency.

Opening a database that is already current costs one query: Alembic (~0.2 s to import, paid before a
training run's first step) is imported only when there is something to migrate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from .database import write_transaction

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions; tests/core/test_storage.py checks it against Alembic's
# own answer, so a new migration that forgets to move it fails there.
HEAD = "0003"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    """The head as Alembic computes it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_revision(conn) -> str | None:  # type: ignore[no-untyped-def]
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_to_head(engine: Engine) -> None:
    """Apply pending migrations. Writers are serialised (SQLite's write lock, PostgreSQL's advisory
    lock), so several processes opening a new database at once migrate it exactly once."""
    with engine.connect() as conn:
        if _current_revision(conn) == HEAD:
            return
    from alembic import command

    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7420019)"))
        if _current_revision(conn) == HEAD:
            return
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
