"""widget_links: a user's consent that an assistant's widget may chat as them

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 11:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "widget_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("assistant_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assistant_id"], ["assistants.id"],
            name=op.f("fk_widget_links_assistant_id_assistants"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_widget_links_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_widget_links")),
        sa.UniqueConstraint(
            "user_id", "assistant_id", name=op.f("uq_widget_links_user_id")
        ),
    )  # fmt: skip
    with op.batch_alter_table("widget_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_widget_links_assistant_id"), ["assistant_id"])
        batch_op.create_index(batch_op.f("ix_widget_links_user_id"), ["user_id"])


def downgrade() -> None:
    with op.batch_alter_table("widget_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_widget_links_user_id"))
        batch_op.drop_index(batch_op.f("ix_widget_links_assistant_id"))
    op.drop_table("widget_links")
