"""Appeals: a blocked output that its client appealed enters the review queue marked as an appeal.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("appeal", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("appeal_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_column("appeal_reason")
        batch_op.drop_column("appeal")
