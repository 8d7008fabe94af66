"""Bring a database to the newest schema with Alembic, once per engine, safely under concurrency.

Opening a database that is already current costs one query: Alembic (~0.2 s to import, paid before a
training run's first step) is imported only when there is something to migrate. A new, empty database
is built from the declared schema and stamped at the head, as Alembic's cookbook does ("building an up
to date database from scratch"): one `CREATE TABLE` per table instead of every migration in turn, with
SQLite's batch-mode table rebuilds (~0.4 s of CPU per new database). tests/core/test_storage.py checks
that both ways build the same schema on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, Engine, MetaData, PrimaryKeyConstraint, String, Table, inspect, text

from .database import write_transaction
from .errors import SchemaTooNew
from .schema import metadata

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions; tests/core/test_storage.py checks it against Alembic's
# own answer, so a new migration that forgets to move it fails there.
HEAD = "0013"
VERSION_TABLE = "alembic_version"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    """The head as Alembic computes it from the migration scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _is_new(conn: Connection) -> bool:
    """No version table and none of our tables: nothing to migrate, everything to create."""
    names = set(inspect(conn).get_table_names())
    return VERSION_TABLE not in names and names.isdisjoint(metadata.tables)


def _create_at_head(conn: Connection) -> None:
    """The declared schema, and Alembic's version table holding the head (the table as Alembic makes it,
    so later migrations apply on top as usual)."""
    metadata.create_all(conn)
    version = Table(
        VERSION_TABLE,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )
    version.create(conn)
    conn.execute(version.insert().values(version_num=HEAD))


def _current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def known_revisions() -> set[str]:
    """The revisions this package's migrations know, from the scripts' file names (no Alembic import)."""
    return {path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py")}


def _refuse_newer(revision: str | None) -> None:
    """A revision this package does not know was written by a newer one: refuse before writing anything,
    in one line, instead of Alembic's "Can't locate revision" traceback."""
    if revision is not None and revision not in known_revisions():
        raise SchemaTooNew(
            f"this database was written by a newer diary-integrations (schema {revision}; this one knows up "
            f"to {HEAD}): upgrade the package (pip install -U diary-integrations)", field="uri",
        )


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (None for a database diary has not created yet); never writes."""
    with engine.connect() as conn:
        return _current_revision(conn)


def upgrade_to_head(engine: Engine, *, create_new: bool = True) -> None:
    """Apply pending migrations; a new database is created at the head (`create_new=False` runs every
    migration instead, as the schema tests do). Writers are serialised (SQLite's write lock,
    PostgreSQL's advisory lock), so several processes opening a new database at once build it once."""
    revision = current_revision(engine)
    if revision == HEAD:
        return
    _refuse_newer(revision)
    if engine.dialect.name == "sqlite":
        _upgrade_sqlite(engine, create_new)
        return
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7420019)"))
        # Another server may have migrated while this one waited for the lock: look again.
        revision = _current_revision(conn)
        if revision == HEAD:
            return
        _refuse_newer(revision)
        _build(conn, create_new)


def _build(conn: Connection, create_new: bool) -> None:
    if create_new and _is_new(conn):
        _create_at_head(conn)
    else:
        _run(conn)


def _run(conn: Connection) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def _upgrade_sqlite(engine: Engine, create_new: bool) -> None:
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
                revision = _current_revision(conn)
                if revision == HEAD:
                    return
                _refuse_newer(revision)
                _build(conn, create_new)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows without their parents: {broken[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")
