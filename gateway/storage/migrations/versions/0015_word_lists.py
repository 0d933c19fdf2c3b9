"""Word lists kept in the database: lists (global or a tenant's), their immutable versions, and the
attachments of lists to policies and tenants (gateway/wordlists/).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 22:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "word_lists",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_word_lists")),
        sa.UniqueConstraint("tenant", "name", name=op.f("uq_word_lists_tenant_name")),
    )
    op.create_table(
        "word_list_versions",
        sa.Column("list_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("words", JSON, nullable=False),
        sa.Column("allow", JSON, nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["word_lists.id"], name=op.f("fk_word_list_versions_list_id_word_lists")
        ),
        sa.ForeignKeyConstraint(
            ["revision"],
            ["moderation_revisions.id"],
            name=op.f("fk_word_list_versions_revision_moderation_revisions"),
        ),
        sa.PrimaryKeyConstraint("list_id", "version", name=op.f("pk_word_list_versions")),
    )
    with op.batch_alter_table("word_list_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_word_list_versions_revision"), ["revision"], unique=False)
    op.create_table(
        "word_list_attachments",
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("list_id", ID, nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=False),
        sa.Column("attached", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["word_lists.id"], name=op.f("fk_word_list_attachments_list_id_word_lists")
        ),
        sa.ForeignKeyConstraint(
            ["revision"],
            ["moderation_revisions.id"],
            name=op.f("fk_word_list_attachments_revision_moderation_revisions"),
        ),
        sa.PrimaryKeyConstraint(
            "revision", "list_id", "target_kind", "target", name=op.f("pk_word_list_attachments")
        ),
    )


def downgrade() -> None:
    op.drop_table("word_list_attachments")
    with op.batch_alter_table("word_list_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_word_list_versions_revision"))
    op.drop_table("word_list_versions")
    op.drop_table("word_lists")
