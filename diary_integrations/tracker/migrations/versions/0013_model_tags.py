"""registered-model and model-version tags (MLflow's registry tags, issue 26)

Two new tables, one row per (model or version, key); nothing existing changes, so databases written before
keep working (no rows: no tags).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_tag",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], name=op.f("fk_model_tag_model_id_model"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_model_tag")),
    )
    op.create_table(
        "model_version_tag",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_version.id"],
                                name=op.f("fk_model_version_tag_model_version_id_model_version"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_version_id", "key", name=op.f("pk_model_version_tag")),
    )


def downgrade() -> None:
    op.drop_table("model_version_tag")
    op.drop_table("model_tag")
