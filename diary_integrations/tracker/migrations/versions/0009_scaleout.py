"""several server processes over one database: a record of reaper rounds

The reaper itself takes turns through a PostgreSQL advisory lock (server/cluster.py); this table records
each round that ran, so who reaped what, and that no two rounds overlapped, can be seen.

Revision ID: 0009
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reaper_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.Float(precision=53), nullable=False),
        sa.Column("finished_at", sa.Float(precision=53), nullable=False),
        sa.Column("reaped", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reaper_run")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_reaper_run_started_at"), "reaper_run", ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_reaper_run_started_at"), table_name="reaper_run")
    op.drop_table("reaper_run")
