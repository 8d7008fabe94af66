"""the model registry: models, their numbered versions, aliases

New tables only, so existing databases keep every row; no table is rebuilt.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from diary_integrations.tracker.schema import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_date", UTCDateTime(), nullable=False),
        sa.Column("updated_date", UTCDateTime(), nullable=True),
        sa.Column("latest_version", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_model_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_model_project_id"), "model", ["project_id"], unique=False)
    op.create_index("uq_model_project_id_name", "model", ["project_id", "name"], unique=True)
    op.create_table(
        "model_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("iteration_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=True),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_date", UTCDateTime(), nullable=False),
        sa.Column("updated_date", UTCDateTime(), nullable=True),
        sa.CheckConstraint("stage IN (1, 2, 3, 4)", name=op.f("ck_model_version_stage")),
        sa.CheckConstraint("version > 0", name=op.f("ck_model_version_version")),
        sa.ForeignKeyConstraint(
            ["model_id"], ["model.id"], name=op.f("fk_model_version_model_id_model"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["iteration_id"], ["iteration.id"], name=op.f("fk_model_version_iteration_id_iteration"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"], ["resource.id"], name=op.f("fk_model_version_resource_id_resource"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_version")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_model_version_model_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_model_version_iteration_id"), "model_version", ["iteration_id"], unique=False)
    op.create_index(op.f("ix_model_version_resource_id"), "model_version", ["resource_id"], unique=False)
    op.create_table(
        "model_alias",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=250), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["model.id"], name=op.f("fk_model_alias_model_id_model"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_version.id"],
            name=op.f("fk_model_alias_model_version_id_model_version"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_alias")),
        sa.UniqueConstraint("model_id", "alias", name=op.f("uq_model_alias_model_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_model_alias_model_version_id"), "model_alias", ["model_version_id"], unique=False)


def downgrade() -> None:
    op.drop_table("model_alias")
    op.drop_table("model_version")
    op.drop_table("model")
