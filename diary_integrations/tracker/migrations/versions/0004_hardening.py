"""a team server on a network: ids never reused, token generations, login rate-limit counters

On SQLite every table with an integer id is rebuilt as AUTOINCREMENT (keeping its rows, ids, indexes,
foreign keys and CHECK constraints); PostgreSQL's sequences never reuse ids, so there only the new
column and table are added. tracker/migrate.py runs SQLite migrations with foreign keys off (a rebuilt
parent would otherwise cascade-delete its children) and checks them before committing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# Parents before children; every one has an integer id.
TABLES = [
    'user', 'project', 'user_permission', 'experiment', 'iteration', 'parameter', 'metric', 'tag',
    'project_tag', 'experiment_tag', 'iteration_tag', 'resource',
]
# Batch mode does not carry CHECK constraints over when it reflects a SQLite table: named here.
CHECKS = {
    'experiment': [('status', 'status IN (1, 2, 3)')],
    'iteration': [('status', 'status IN (1, 2, 3, 4)')],
}


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for name in TABLES:
        if not sqlite and name != 'user':
            continue
        options = {'recreate': 'always', 'table_kwargs': {'sqlite_autoincrement': True}} if sqlite else {}
        with op.batch_alter_table(name, **options) as batch_op:
            if name == 'user':
                batch_op.add_column(sa.Column('token_generation', sa.Integer(), server_default='0', nullable=False))
            if sqlite:
                for check_name, condition in CHECKS.get(name, []):
                    batch_op.create_check_constraint(check_name, condition)
    op.create_table(
        'login_failure',
        sa.Column('scope', sa.String(length=10), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('window_start', sa.Float(precision=53), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('scope', 'subject', name=op.f('pk_login_failure')),
    )


def downgrade() -> None:
    op.drop_table('login_failure')
    with op.batch_alter_table('user') as batch_op:
        batch_op.drop_column('token_generation')
