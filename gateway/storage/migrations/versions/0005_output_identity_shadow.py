"""Outputs keep the identity-term checks and the shadow policies' decisions made about them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 10:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("generation_outputs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity_checks", _json(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("shadow", _json(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("generation_outputs", schema=None) as batch_op:
        batch_op.drop_column("shadow")
        batch_op.drop_column("identity_checks")
