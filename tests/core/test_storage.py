"""Storage: Alembic's migrations build exactly the schema the code declares, and a new database built
from the declaration at once is the same; trackers pickle to their URL."""

from __future__ import annotations

import pickle
import re
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from postgres_service import POSTGRES_URL
from sqlalchemy import Engine, create_engine, inspect, text

from diary_integrations import LocalTracker, connect
from diary_integrations.tracker.database import create_tracker_engine
from diary_integrations.tracker.migrate import head_revision, upgrade_to_head
from diary_integrations.tracker.schema import metadata


def _built(url: str, *, create_new: bool) -> Engine:
    engine = create_tracker_engine(url)
    upgrade_to_head(engine, create_new=create_new)
    return engine


def _assert_schema_matches(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert context.get_current_revision() == head_revision()
        assert compare_metadata(context, metadata) == []


def _sqlite_schema(engine: Engine) -> dict[tuple[str, str], object]:
    """Every table's definition as a set of its parts (columns, constraints: a migration adds a column
    or a constraint at the end), and every index's statement; quoting and layout aside."""

    def parts(sql: str) -> frozenset[str]:
        body = re.sub(r"DEFAULT \(('[^']*')\)", r"DEFAULT \1", re.sub(r"\s+", " ", sql).replace('"', ""))
        body = body.partition("(")[2].rpartition(")")[0]
        out, depth, current = [], 0, ""
        for ch in body:
            depth += (ch == "(") - (ch == ")")
            if ch == "," and depth == 0:
                out.append(current.strip())
                current = ""
            else:
                current += ch
        return frozenset([*out, current.strip()])

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")).all()
    return {(kind, name): parts(sql) if kind == "table" else re.sub(r"\s+", " ", sql).replace('"', "")
            for kind, name, sql in rows}


def _postgres_schema(engine: Engine) -> dict[str, set[tuple]]:
    """Columns, constraints (with their definitions) and indexes of the engine's schema, by name."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, "
                   "regexp_replace(column_default, '^nextval.*$', 'nextval') FROM information_schema.columns "
                   "WHERE table_schema = current_schema()",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE connamespace = current_schema()::regnamespace",
        "indexes": "SELECT tablename, indexname, regexp_replace(indexdef, ' ON \\S+\\.', ' ON ') FROM pg_indexes "
                   "WHERE schemaname = current_schema()",
    }
    with engine.connect() as conn:
        return {what: {tuple(row) for row in conn.execute(text(sql))} for what, sql in queries.items()}


def test_migrations_build_the_declared_schema_on_sqlite(tmp_path):
    migrated = _built(f"sqlite:///{tmp_path / 'migrated.db'}", create_new=False)
    created = _built(f"sqlite:///{tmp_path / 'created.db'}", create_new=True)
    for engine in (migrated, created):
        _assert_schema_matches(engine)
    assert _sqlite_schema(created) == _sqlite_schema(migrated)
    assert len(_sqlite_schema(created)) > 40  # every table and index was seen


def test_migrations_build_the_declared_schema_on_postgres(postgres_url):
    schema = f"t_created_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        migrated = _built(postgres_url, create_new=False)
        created = _built(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", create_new=True)
        for engine in (migrated, created):
            _assert_schema_matches(engine)
        assert _postgres_schema(created) == _postgres_schema(migrated)
        assert len(_postgres_schema(created)["constraints"]) > 40  # the query saw the schema's tables
        for engine in (migrated, created):
            engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_reopening_is_idempotent(sqlite_url):
    first = LocalTracker(sqlite_url)
    first.create_project("P")
    first.close()
    again = LocalTracker(sqlite_url)
    assert [p.name for p in again.get_projects()] == ["P"]
    assert len(again.get_users()) == 1  # the default user is seeded once
    engine = create_engine(sqlite_url)
    assert "alembic_version" in inspect(engine).get_table_names()


def test_parent_fk_is_set_null_in_both_databases(sqlite_url, postgres_url):
    for url in (sqlite_url, postgres_url):
        tracker = LocalTracker(url)
        engine = tracker.engine
        fks = inspect(engine).get_foreign_keys("iteration")
        parent = next(fk for fk in fks if fk["constrained_columns"] == ["parent_iteration_id"])
        assert parent["options"].get("ondelete", "").upper() == "SET NULL"
        tracker.close()


def test_tracker_pickles_to_its_url_and_reconnects(tmp_path):
    tracker = connect(tmp_path / "p.db")
    project_id, _ = tracker.create_project("P")
    clone = pickle.loads(pickle.dumps(tracker))
    assert clone.url == tracker.url and clone._engine is None
    assert clone.get_project(project_id).name == "P"


def test_connect_resolves_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DIARY_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    assert connect().url.endswith("env.db")
    monkeypatch.delenv("DIARY_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    assert connect().url == f"sqlite:///{tmp_path / 'deardiary.db'}"


def test_filesystem_artifacts(tmp_path):
    tracker = LocalTracker(tmp_path / "a.db", artifact_root=tmp_path / "artifacts")
    project_id, _ = tracker.create_project("P")
    experiment_id, _ = tracker.create_experiment(project_id, 1, "E")
    resource_id, _ = tracker.create_resource(experiment_id, "model.ckpt", b"weights")
    meta = tracker.get_resource(resource_id)
    assert meta.backend.value == "filesystem" and meta.uri.startswith("file://")
    files = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].read_bytes() == b"weights"
    assert tracker.get_resource_data(resource_id) == b"weights"
    tracker.delete_experiment(experiment_id)
    assert [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()] == []


def test_connect_refuses_a_server_address_without_scheme(tmp_path, monkeypatch):
    from diary_integrations import Unprocessable

    monkeypatch.chdir(tmp_path)
    with pytest.raises(Unprocessable, match="http://localhost:9000"):
        connect("localhost:9000")
    assert list(tmp_path.iterdir()) == []


def test_postgres_scheme_is_normalised():
    from diary_integrations.tracker.database import normalize_url

    assert normalize_url("postgres://u@h/db").startswith("postgresql+psycopg://u@h/db")


def test_database_is_whole_after_the_program_ends(tmp_path):
    import subprocess
    import sys

    script = "from diary_integrations import LocalTracker; LocalTracker('w.db').create_project('x')"
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=120)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.db"]  # the WAL was folded back in


def test_head_constant_is_alembics_head():
    from diary_integrations.tracker.migrate import HEAD

    assert head_revision() == HEAD


def test_a_run_on_a_current_database_imports_neither_alembic_nor_the_orm(sqlite_url):
    # A training script's process pays for SQLAlchemy Core only: importing alembic, or sqlalchemy.orm for
    # declarative tables, would cost it ~0.3 s of CPU before the first write.
    import subprocess
    import sys

    LocalTracker(sqlite_url).get_user("default")  # created and migrated here
    probe = (
        "import sys; from diary_integrations import connect; "
        f"t = connect({sqlite_url!r}); p, _ = t.create_project('core-only'); "
        "e, _ = t.create_experiment(p, 1, 'e'); i, _ = t.create_iteration(e); t.log_parameters(i, {'lr': 0.1}); "
        "t.log_metric_points(i, [('m', 1.0, 0)]); t.end_iteration(i); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic' or m.startswith('sqlalchemy.orm')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_postgres_connections_run_without_jit_and_keep_the_urls_options(postgres_url):
    # JIT compiled a 100,000-row search's plan for longer than the plan ran (tracker/database.py).
    tracker = LocalTracker(postgres_url)
    try:
        with tracker.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
            assert conn.exec_driver_sql("SHOW search_path").scalar() == postgres_url.rsplit("%3D", 1)[1]
    finally:
        tracker.close()
