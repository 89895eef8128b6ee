"""fine_tuning_files, fine_tuning_jobs: OpenAI's fine-tuning API

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AutoString = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "fine_tuning_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", AutoString(length=40), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("filename", AutoString(length=255), nullable=False),
        sa.Column("purpose", AutoString(length=32), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("examples", sa.Integer(), nullable=False),
        sa.Column("storage_path", AutoString(length=1000), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_fine_tuning_files_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fine_tuning_files")),
        sa.UniqueConstraint("public_id", name=op.f("uq_fine_tuning_files_public_id")),
    )  # fmt: skip
    with op.batch_alter_table("fine_tuning_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fine_tuning_files_owner_id"), ["owner_id"])
    op.create_table(
        "fine_tuning_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", AutoString(length=40), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("assistant_id", sa.Integer(), nullable=False),
        sa.Column("training_job_id", sa.Integer(), nullable=False),
        sa.Column("model", AutoString(length=200), nullable=False),
        sa.Column("training_file", AutoString(length=40), nullable=False),
        sa.Column("validation_file", AutoString(length=40), nullable=False),
        sa.Column("suffix", AutoString(length=64), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("fine_tuned_model", AutoString(length=300), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_fine_tuning_jobs_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["assistant_id"], ["assistants.id"],
            name=op.f("fk_fine_tuning_jobs_assistant_id_assistants"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["training_job_id"], ["training_jobs.id"],
            name=op.f("fk_fine_tuning_jobs_training_job_id_training_jobs"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fine_tuning_jobs")),
        sa.UniqueConstraint("public_id", name=op.f("uq_fine_tuning_jobs_public_id")),
        sa.UniqueConstraint(
            "fine_tuned_model", name=op.f("uq_fine_tuning_jobs_fine_tuned_model")
        ),
    )  # fmt: skip
    with op.batch_alter_table("fine_tuning_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fine_tuning_jobs_owner_id"), ["owner_id"])
        batch_op.create_index(batch_op.f("ix_fine_tuning_jobs_assistant_id"), ["assistant_id"])
        batch_op.create_index(
            batch_op.f("ix_fine_tuning_jobs_training_job_id"), ["training_job_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("fine_tuning_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fine_tuning_jobs_training_job_id"))
        batch_op.drop_index(batch_op.f("ix_fine_tuning_jobs_assistant_id"))
        batch_op.drop_index(batch_op.f("ix_fine_tuning_jobs_owner_id"))
    op.drop_table("fine_tuning_jobs")
    with op.batch_alter_table("fine_tuning_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fine_tuning_files_owner_id"))
    op.drop_table("fine_tuning_files")
