"""Prompt runs: held prompts a reviewer approved, waiting for (or done with) their generation
(gateway/prompt_runs.py), claimed by the servers' prompt-run workers with a lease.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 21:45:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prompt_runs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("output_id", sa.String(length=36), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "done",
                name="prompt_run_state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generation_request_id", sa.String(length=36), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_request_id"],
            ["generation_requests.id"],
            name=op.f("fk_prompt_runs_generation_request_id_generation_requests"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["output_id"],
            ["generation_outputs.id"],
            name=op.f("fk_prompt_runs_output_id_generation_outputs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_runs")),
        sa.UniqueConstraint("output_id", name=op.f("uq_prompt_runs_output_id")),
    )
    with op.batch_alter_table("prompt_runs", schema=None) as batch_op:
        batch_op.create_index("ix_prompt_runs_due", ["state", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("prompt_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_prompt_runs_due")

    op.drop_table("prompt_runs")
