"""creator tiers (admin-defined), creators' tier subscriptions, training compute usage;
invoices: kind, application fee, connected account; users: Stripe Connect account

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 13:32:25.546972
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "creator_tiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("monthly_price_cents", sa.Integer(), nullable=False),
        sa.Column("included_gpu_hours", sa.Float(), nullable=True),
        sa.Column("overage_cents_per_gpu_hour", sa.Integer(), nullable=False),
        sa.Column("storage_mb", sa.Integer(), nullable=True),
        sa.Column("max_assistants", sa.Integer(), nullable=True),
        sa.Column("max_concurrent_jobs", sa.Integer(), nullable=True),
        sa.Column("queue_priority", sa.Integer(), nullable=False),
        sa.Column("is_archived", sa.Boolean(), nullable=False),
        sa.Column(
            "stripe_product_id", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False
        ),
        sa.Column(
            "stripe_monthly_price_id", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False
        ),
        sa.Column(
            "stripe_overage_price_id", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False
        ),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_creator_tiers")),
        sa.UniqueConstraint("key", name=op.f("uq_creator_tiers_key")),
    )
    op.create_table(
        "creator_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column(
            "stripe_customer_id", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False
        ),
        sa.Column(
            "stripe_subscription_id", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False
        ),
        sa.Column("stripe_price_id", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("current_period_start", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("current_period_end", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("past_due_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("canceled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_event_created", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_creator_subscriptions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_creator_subscriptions")),
        sa.UniqueConstraint("user_id", name=op.f("uq_creator_subscriptions_user_id")),
    )
    with op.batch_alter_table("creator_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_creator_subscriptions_stripe_subscription_id"),
            ["stripe_subscription_id"],
            unique=False,
        )

    op.create_table(
        "compute_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("training_job_id", sa.Integer(), nullable=True),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("device_seconds", sa.Float(), nullable=False),
        sa.Column("overage_seconds", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("reported_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["training_job_id"],
            ["training_jobs.id"],
            name=op.f("fk_compute_usage_training_job_id_training_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_compute_usage_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compute_usage")),
    )
    with op.batch_alter_table("compute_usage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_compute_usage_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_compute_usage_training_job_id"), ["training_job_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_compute_usage_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind",
                sqlmodel.sql.sqltypes.AutoString(length=20),
                nullable=False,
                server_default="assistant",
            )
        )
        batch_op.add_column(
            sa.Column("application_fee_cents", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column(
                "connected_account",
                sqlmodel.sql.sqltypes.AutoString(length=120),
                nullable=False,
                server_default="",
            )
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "stripe_account_id",
                sqlmodel.sql.sqltypes.AutoString(length=120),
                nullable=False,
                server_default="",
            )
        )
        for name in (
            "connect_details_submitted", "connect_charges_enabled", "connect_payouts_enabled"
        ):  # fmt: skip
            batch_op.add_column(
                sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
            )
        batch_op.create_index(batch_op.f("ix_users_stripe_account_id"), ["stripe_account_id"])


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_stripe_account_id"))
        for name in (
            "connect_payouts_enabled", "connect_charges_enabled", "connect_details_submitted",
            "stripe_account_id",
        ):  # fmt: skip
            batch_op.drop_column(name)
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("connected_account")
        batch_op.drop_column("application_fee_cents")
        batch_op.drop_column("kind")

    with op.batch_alter_table("compute_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compute_usage_user_id"))
        batch_op.drop_index(batch_op.f("ix_compute_usage_training_job_id"))
        batch_op.drop_index(batch_op.f("ix_compute_usage_created_at"))

    op.drop_table("compute_usage")
    with op.batch_alter_table("creator_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_creator_subscriptions_stripe_subscription_id"))

    op.drop_table("creator_subscriptions")
    op.drop_table("creator_tiers")
