"""QA samples: a share of released (and masked) outputs drawn for reviewers to label harmful or fine,
the sampling rate each was drawn at, and the label (gateway/review/qa.py; the miss rate in the policy
report).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 21:45:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "qa_samples",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("output_id", sa.String(length=36), nullable=False),
        sa.Column("policy_name", sa.String(length=128), nullable=False),
        sa.Column("sample_rate", sa.Float(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "harmful",
                "fine",
                name="qa_state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "categories",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("labelled_by", sa.String(length=36), nullable=True),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["labelled_by"], ["reviewers.id"], name=op.f("fk_qa_samples_labelled_by_reviewers")
        ),
        sa.ForeignKeyConstraint(
            ["output_id"],
            ["generation_outputs.id"],
            name=op.f("fk_qa_samples_output_id_generation_outputs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qa_samples")),
        sa.UniqueConstraint("output_id", name=op.f("uq_qa_samples_output_id")),
    )
    with op.batch_alter_table("qa_samples", schema=None) as batch_op:
        batch_op.create_index("ix_qa_samples_queue", ["state", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("qa_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_qa_samples_queue")
    op.drop_table("qa_samples")
