"""assistants: the widget's look (colour, title, greeting, position, launcher)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 11:50:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('assistants', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('widget_look', sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table('assistants', schema=None) as batch_op:
        batch_op.drop_column('widget_look')
