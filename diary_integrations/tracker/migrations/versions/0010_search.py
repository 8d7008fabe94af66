"""reads that scale: a sweep's children by status, from one index

`get_best_child_iteration` and a search scoped to a driver read the children of one parent in one status
(SUCCEEDED by default); with 100,000 children the single-column parent index left every child's row to
be read to check its status. This composite index answers both from the index alone (SQLite keeps the
row id in it, so the children also come out ordered by id).

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


def downgrade() -> None:
    op.drop_index("ix_iteration_parent_status", table_name="iteration")
