"""make_is_completed_not_nullable

Revision ID: 2026_02_21_004
Revises: 2026_02_21_003
Create Date: 2026-02-21

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '2026_02_21_004'
down_revision = '2026_02_21_003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE todos SET is_completed = false WHERE is_completed IS NULL")
    with op.batch_alter_table('todos') as batch_op:
        batch_op.alter_column('is_completed', existing_type=sa.Boolean(), nullable=False, server_default=sa.false())


def downgrade() -> None:
    with op.batch_alter_table('todos') as batch_op:
        batch_op.alter_column('is_completed', existing_type=sa.Boolean(), nullable=True, server_default=None)
