"""Several reviewers per item: the verdicts given on items whose policy asks for more than one
(`[review.consensus.POLICY]`, gateway/review/consensus.py), one per reviewer and item.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 21:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "review_verdicts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("item_id", sa.String(length=36), nullable=False),
        sa.Column("reviewer_id", sa.String(length=36), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("edited_text", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["review_items.id"],
            name=op.f("fk_review_verdicts_item_id_review_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["reviewers.id"], name=op.f("fk_review_verdicts_reviewer_id_reviewers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_verdicts")),
        sa.UniqueConstraint("item_id", "reviewer_id", name=op.f("uq_review_verdicts_item_id_reviewer_id")),
    )
    with op.batch_alter_table("review_verdicts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_verdicts_item_id"), ["item_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("review_verdicts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_verdicts_item_id"))
    op.drop_table("review_verdicts")
