"""MLflow's datasets, run inputs/outputs and metric links; an experiment's requested artifact location;
a logged model's source run id that names no run here; a registered version's MLflow source (issue 26)

Four new tables and two nullable columns; nothing existing changes meaning, so databases written before
keep working (no rows: no datasets, no links; NULL: the server's own artifact proxy).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import diary_integrations.tracker.schema

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mlflow_experiment") as batch_op:
        batch_op.add_column(sa.Column("artifact_location", sa.Text(), nullable=True))
    with op.batch_alter_table("mlflow_logged_model") as batch_op:
        batch_op.add_column(sa.Column("source_run_text", sa.String(length=64), nullable=True))
    op.create_table(
        "mlflow_dataset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("digest", sa.String(length=36), nullable=False),
        sa.Column("source_type", sa.String(length=36), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("schema", sa.Text(), server_default="", nullable=False),
        sa.Column("profile", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiment.id"], name=op.f("fk_mlflow_dataset_experiment_id_experiment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mlflow_dataset")),
        sa.UniqueConstraint("experiment_id", "name", "digest", name=op.f("uq_mlflow_dataset_experiment_id")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "mlflow_run_io",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("iteration_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("model_id", sa.String(length=64), nullable=True),
        sa.Column("step", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tags", sa.Text(), server_default="[]", nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["mlflow_dataset.id"], name=op.f("fk_mlflow_run_io_dataset_id_mlflow_dataset"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["iteration_id"], ["iteration.id"], name=op.f("fk_mlflow_run_io_iteration_id_iteration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mlflow_run_io")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_mlflow_run_io_iteration_id"), "mlflow_run_io", ["iteration_id"])
    op.create_index(op.f("ix_mlflow_run_io_dataset_id"), "mlflow_run_io", ["dataset_id"])
    op.create_table(
        "mlflow_metric_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("iteration_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=True),
        sa.Column("dataset_name", sa.String(length=500), nullable=True),
        sa.Column("dataset_digest", sa.String(length=36), nullable=True),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", diary_integrations.tracker.schema.FaithfulFloat(precision=53), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["iteration_id"], ["iteration.id"], name=op.f("fk_mlflow_metric_link_iteration_id_iteration"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mlflow_metric_link")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_mlflow_metric_link_iteration_id"), "mlflow_metric_link", ["iteration_id"])
    op.create_index(op.f("ix_mlflow_metric_link_model_id"), "mlflow_metric_link", ["model_id"])
    op.create_table(
        "mlflow_model_version",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), server_default="", nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_version.id"],
            name=op.f("fk_mlflow_model_version_model_version_id_model_version"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_version_id", name=op.f("pk_mlflow_model_version")),
    )


def downgrade() -> None:
    op.drop_table("mlflow_model_version")
    for table, columns in (("mlflow_metric_link", ("model_id", "iteration_id")),
                           ("mlflow_run_io", ("dataset_id", "iteration_id"))):
        for column in columns:
            op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
        op.drop_table(table)
    op.drop_table("mlflow_dataset")
    with op.batch_alter_table("mlflow_logged_model") as batch_op:
        batch_op.drop_column("source_run_text")
    with op.batch_alter_table("mlflow_experiment") as batch_op:
        batch_op.drop_column("artifact_location")
