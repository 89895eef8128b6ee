"""documents.encryption_key_id (originals encrypted at rest) and users.deleted_at (erasure)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 13:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing files stay plain ("" here) and readable until `python -m gptstudio.rotate_keys`.
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "encryption_key_id", sqlmodel.sql.sqltypes.AutoString(length=40),
                nullable=False, server_default="",
            )
        )  # fmt: skip
        batch_op.create_index(batch_op.f("ix_documents_encryption_key_id"), ["encryption_key_id"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_encryption_key_id"))
        batch_op.drop_column("encryption_key_id")
