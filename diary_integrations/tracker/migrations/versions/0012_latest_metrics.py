"""reads that scale: each iteration's latest value of each metric, in a table of its own (issue 23)

The best child, a search ordered by a metric and a sweep's table all need "the latest value of x per
child"; read from the series it is a seek per child (100,000 seeks for a 100,000-child sweep). This table
holds it, one row per (iteration, key), kept by every metric write from now on (tracker/latest.py), with
indexes that give a sweep's children, or any iterations, in value order. Filled here from the series:
the point at the highest step, the newest there, as `get_latest_metrics` read it.

Two indexes on iteration for the other reads of a 100,000-child sweep: a parent's children in id order
(a first page without sorting every child), and an experiment's iterations by status in place of the
index on experiment_id alone (its RUNNING rows, whose processes every read checks, without reading every
row of the experiment).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import diary_integrations.tracker.schema
from diary_integrations.tracker.latest import BACKFILL

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_latest",
        sa.Column("iteration_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("parent_iteration_id", sa.Integer(), nullable=True),
        sa.Column("value", diary_integrations.tracker.schema.FaithfulFloat(precision=53), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["iteration_id"], ["iteration.id"], name=op.f("fk_metric_latest_iteration_id_iteration"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_iteration_id"], ["iteration.id"],
            name=op.f("fk_metric_latest_parent_iteration_id_iteration"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("iteration_id", "key", name=op.f("pk_metric_latest")),
    )
    # Filled before the indexes are built: one sort per index instead of an index update per row.
    op.execute(BACKFILL)
    op.create_index(
        "ix_metric_latest_parent_key_value", "metric_latest", ["parent_iteration_id", "key", "value", "iteration_id"]
    )
    op.create_index("ix_metric_latest_key_value", "metric_latest", ["key", "value", "iteration_id"])
    op.create_index("ix_iteration_parent_id", "iteration", ["parent_iteration_id", "id"])
    op.create_index("ix_iteration_experiment_status", "iteration", ["experiment_id", "status"])
    op.drop_index("ix_iteration_experiment_id", table_name="iteration")


def downgrade() -> None:
    op.create_index("ix_iteration_experiment_id", "iteration", ["experiment_id"])
    op.drop_index("ix_iteration_experiment_status", table_name="iteration")
    op.drop_index("ix_iteration_parent_id", table_name="iteration")
    op.drop_index("ix_metric_latest_key_value", table_name="metric_latest")
    op.drop_index("ix_metric_latest_parent_key_value", table_name="metric_latest")
    op.drop_table("metric_latest")
