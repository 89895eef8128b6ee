"""invoices: an index on subscription_id (the revenue page's trial → paid conversion)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 14:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_invoices_subscription_id"), "invoices", ["subscription_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_invoices_subscription_id"), table_name="invoices")
