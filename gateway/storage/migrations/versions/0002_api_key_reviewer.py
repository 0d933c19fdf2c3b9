"""API keys can act for a reviewer account (programmatic reviewers of the Review service).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reviewer_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_reviewer_id_reviewers"), "reviewers", ["reviewer_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_keys_reviewer_id_reviewers"), type_="foreignkey")
        batch_op.drop_column("reviewer_id")
