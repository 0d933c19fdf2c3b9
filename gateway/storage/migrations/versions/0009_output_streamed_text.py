"""Outputs of a stream keep what the client was sent while it streamed (`streamed_text`).

For a held or blocked stream output that is the prefix released before the moderator stopped the
release: the only part the client saw. It used to be in the audit event, which must carry no text.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 19:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("generation_outputs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("streamed_text", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("generation_outputs", schema=None) as batch_op:
        batch_op.drop_column("streamed_text")
