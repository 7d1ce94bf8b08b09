"""add_updated_at_to_todos

Revision ID: 2026_02_21_002
Revises: 2026_02_21_001
Create Date: 2026-02-21

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '2026_02_21_002'
down_revision = '2026_02_21_001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('todos', sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('todos', 'updated_at')
