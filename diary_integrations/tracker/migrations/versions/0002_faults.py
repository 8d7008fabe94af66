"""exactly-once writes and embedded liveness: idempotency keys, the process behind each iteration

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

import diary_integrations.tracker.schema

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('iteration_process',
    sa.Column('iteration_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('host', sa.String(length=250), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('process_start', sa.Float(precision=53), nullable=False),
    sa.ForeignKeyConstraint(['iteration_id'], ['iteration.id'], name=op.f('fk_iteration_process_iteration_id_iteration'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('iteration_id', name=op.f('pk_iteration_process'))
    )
    op.create_table('idempotency_key',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', sa.Text(), nullable=False),
    sa.Column('created_date', diary_integrations.tracker.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_idempotency_key'))
    )
    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_key_created_date'), ['created_date'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('idempotency_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_key_created_date'))
    op.drop_table('idempotency_key')
    op.drop_table('iteration_process')
