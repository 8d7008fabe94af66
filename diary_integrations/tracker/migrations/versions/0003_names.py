"""names: unique project names, experiment names unique within their project, an iteration name

Existing databases may hold duplicates (names were not unique before): every duplicate but the oldest
is renamed `name (2)`, `name (3)`, ... in id order (skipping a suffix already taken), so the migration is
deterministic and the oldest row, the one integrations used to resolve the name to, keeps its name.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

MAX_NAME = 250


def _suffixed(name: str, n: int) -> str:
    suffix = f" ({n})"
    return name[:MAX_NAME - len(suffix)] + suffix


def _rename_duplicates(conn, table: str, scope: str | None) -> None:
    """Rename all but the oldest row of each (scope, name) group."""
    columns = f"id, {scope}, name" if scope else "id, NULL, name"
    rows = conn.execute(sa.text(f"SELECT {columns} FROM {table} ORDER BY id")).fetchall()
    taken = {(r[1], r[2]) for r in rows}
    seen: set = set()
    for row_id, group, name in rows:
        if (group, name) not in seen:
            seen.add((group, name))
            continue
        n = 2
        while (group, _suffixed(name, n)) in taken:
            n += 1
        new = _suffixed(name, n)
        taken.add((group, new))
        seen.add((group, new))
        conn.execute(sa.text(f"UPDATE {table} SET name = :name WHERE id = :id"), {"name": new, "id": row_id})


def upgrade() -> None:
    conn = op.get_bind()
    _rename_duplicates(conn, "project", None)
    _rename_duplicates(conn, "experiment", "project_id")
    # Unique indexes and a plain ADD COLUMN: neither rebuilds a table on SQLite (a rebuild drops the old
    # table, and with foreign keys on its ON DELETE CASCADE would delete the rows that refer to it).
    op.create_index('uq_project_name', 'project', ['name'], unique=True)
    op.create_index('uq_experiment_project_id_name', 'experiment', ['project_id', 'name'], unique=True)
    op.add_column('iteration', sa.Column('name', sa.String(length=250), server_default='', nullable=False))


def downgrade() -> None:
    op.drop_column('iteration', 'name')  # SQLite >= 3.35 drops a column in place
    op.drop_index('uq_experiment_project_id_name', table_name='experiment')
    op.drop_index('uq_project_name', table_name='project')
