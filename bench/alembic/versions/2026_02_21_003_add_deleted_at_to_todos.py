"""add_deleted_at_to_todos

Revision ID: 2026_02_21_003
Revises: 2026_02_21_002
Create Date: 2026-02-21

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '2026_02_21_003'
down_revision = '2026_02_21_002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('todos', sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('todos', 'deleted_at')
