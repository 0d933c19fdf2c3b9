"""Reviewer session epochs: a counter per reviewer that logout, password change and disabling bump.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 18:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows start at 0; cookies issued before this revision carry no epoch and are refused, so
    # every reviewer logs in once more after the upgrade.
    with op.batch_alter_table("reviewers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_epoch", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("reviewers", schema=None) as batch_op:
        batch_op.drop_column("session_epoch")
