"""MLflow's tracking API: run and experiment lifecycle (soft delete), MLflow's key/value tags, logged models

Five new tables beside the iterations and experiments they describe; nothing existing changes, so
databases written before keep working (an iteration without an `mlflow_run` row is an active run).

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlflow_run",
        sa.Column("iteration_id", sa.Integer(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=20), server_default="active", nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=True),
        sa.Column("user_id", sa.String(length=250), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["iteration_id"], ["iteration.id"], name=op.f("fk_mlflow_run_iteration_id_iteration"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("iteration_id", name=op.f("pk_mlflow_run")),
    )
    op.create_table(
        "mlflow_run_tag",
        sa.Column("iteration_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["iteration_id"],
            ["iteration.id"],
            name=op.f("fk_mlflow_run_tag_iteration_id_iteration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("iteration_id", "key", name=op.f("pk_mlflow_run_tag")),
    )
    op.create_table(
        "mlflow_experiment",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=20), server_default="active", nullable=False),
        sa.Column("last_update_time", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiment.id"],
            name=op.f("fk_mlflow_experiment_experiment_id_experiment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", name=op.f("pk_mlflow_experiment")),
    )
    op.create_table(
        "mlflow_experiment_tag",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiment.id"],
            name=op.f("fk_mlflow_experiment_tag_experiment_id_experiment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "key", name=op.f("pk_mlflow_experiment_tag")),
    )
    op.create_table(
        "mlflow_logged_model",
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("source_run_id", sa.Integer(), nullable=True),
        sa.Column("model_type", sa.String(length=250), server_default="", nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("status_message", sa.Text(), server_default="", nullable=False),
        sa.Column("creator", sa.String(length=250), server_default="", nullable=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.Column("last_update_time", sa.BigInteger(), nullable=False),
        sa.Column("tags", sa.Text(), server_default="{}", nullable=False),
        sa.Column("params", sa.Text(), server_default="{}", nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiment.id"],
            name=op.f("fk_mlflow_logged_model_experiment_id_experiment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_run_id"],
            ["iteration.id"],
            name=op.f("fk_mlflow_logged_model_source_run_id_iteration"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_mlflow_logged_model")),
    )
    op.create_index(op.f("ix_mlflow_logged_model_experiment_id"), "mlflow_logged_model", ["experiment_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_mlflow_logged_model_experiment_id"), table_name="mlflow_logged_model")
    for name in ("mlflow_logged_model", "mlflow_experiment_tag", "mlflow_experiment", "mlflow_run_tag", "mlflow_run"):
        op.drop_table(name)
