"""reads that scale: a sweep's children by status, from one index

`get_best_child_iteration` and a search scoped to a driver read the children of one parent in one status
(SUCCEEDED by default); with 100,000 children the single-column parent index left every child's row to
be read to check its status. This composite index answers both from the index alone (SQLite keeps the
row id in it, so the children also come out ordered by id). It replaces the index on parent_iteration_id
alone, which it serves as well (a leading column), so PostgreSQL's planner has one choice, not two.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_iteration_parent_status", "iteration", ["parent_iteration_id", "status"], unique=False)
    op.drop_index("ix_iteration_parent_iteration_id", table_name="iteration")


def downgrade() -> None:
    op.create_index("ix_iteration_parent_iteration_id", "iteration", ["parent_iteration_id"], unique=False)
    op.drop_index("ix_iteration_parent_status", table_name="iteration")
