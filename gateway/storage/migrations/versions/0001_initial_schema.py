"""Initial schema: requests and outputs, review queue, reviewers, API keys, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 09:38:30+00:00

Self-contained on purpose: it imports nothing from ``gateway``, so later changes to the models cannot
change what this revision creates.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    """Timestamps are stored in UTC (``gateway.storage.base.UTCDateTime`` on the model side)."""
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine:
    """JSON, JSONB on PostgreSQL (``gateway.storage.base.json_type``)."""
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", _json(), nullable=False),
        sa.Column("policy", sa.String(length=128), nullable=True),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("last_used_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_prefix", name=op.f("uq_api_keys_key_prefix")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_tenant"), ["tenant"], unique=False)

    op.create_table(
        "audit_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("ticket", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_events_hash")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_event_type"), ["event_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_tenant"), ["tenant"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_ticket"), ["ticket"], unique=False)

    op.create_table(
        "reviewers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "reviewer",
                "admin",
                name="reviewer_role",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviewers")),
        sa.UniqueConstraint("username", name=op.f("uq_reviewers_username")),
    )
    op.create_table(
        "generation_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=128), nullable=False),
        sa.Column("api_key_id", sa.String(length=36), nullable=True),
        sa.Column("model_id", sa.String(length=256), nullable=False),
        sa.Column("model_revision", sa.String(length=64), nullable=True),
        sa.Column("parameters", _json(), nullable=False),
        sa.Column("prompt_count", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "received",
                "generating",
                "completed",
                "failed",
                "cancelled",
                name="request_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_generation_requests_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation_requests")),
    )
    with op.batch_alter_table("generation_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_generation_requests_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_generation_requests_tenant"), ["tenant"], unique=False)

    op.create_table(
        "generation_outputs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("generation_request_id", sa.String(length=36), nullable=False),
        sa.Column("prompt_index", sa.Integer(), nullable=False),
        sa.Column("sequence_index", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("generated_text", sa.Text(), nullable=False),
        sa.Column("released_text", sa.Text(), nullable=True),
        sa.Column("scores", _json(), nullable=False),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("spans", _json(), nullable=False),
        sa.Column(
            "action",
            sa.Enum(
                "release",
                "mask",
                "hold",
                "block",
                name="moderation_action",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "released",
                "held",
                "blocked",
                "approved",
                "edited",
                "rejected",
                "failed",
                name="output_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("policy_name", sa.String(length=128), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("scorers", _json(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("generated_tokens", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(length=32), nullable=True),
        sa.Column("ticket", sa.String(length=64), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_request_id"],
            ["generation_requests.id"],
            name=op.f("fk_generation_outputs_generation_request_id_generation_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation_outputs")),
        sa.UniqueConstraint(
            "generation_request_id",
            "prompt_index",
            "sequence_index",
            name=op.f("uq_generation_outputs_generation_request_id_prompt_index_sequence_index"),
        ),
        sa.UniqueConstraint("ticket", name=op.f("uq_generation_outputs_ticket")),
    )
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("output_id", sa.String(length=36), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "claimed",
                "approved",
                "edited",
                "rejected",
                name="review_state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("claimed_by", sa.String(length=36), nullable=True),
        sa.Column("claimed_at", _utc(), nullable=True),
        sa.Column("lease_expires_at", _utc(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("decided_by", sa.String(length=36), nullable=True),
        sa.Column("decided_at", _utc(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("edited_text", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["claimed_by"], ["reviewers.id"], name=op.f("fk_review_items_claimed_by_reviewers")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["reviewers.id"], name=op.f("fk_review_items_decided_by_reviewers")
        ),
        sa.ForeignKeyConstraint(
            ["output_id"],
            ["generation_outputs.id"],
            name=op.f("fk_review_items_output_id_generation_outputs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
        sa.UniqueConstraint("output_id", name=op.f("uq_review_items_output_id")),
    )
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_items_queue", ["state", "escalated", "priority", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_index("ix_review_items_queue")

    op.drop_table("review_items")
    op.drop_table("generation_outputs")
    with op.batch_alter_table("generation_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generation_requests_tenant"))
        batch_op.drop_index(batch_op.f("ix_generation_requests_request_id"))

    op.drop_table("generation_requests")
    op.drop_table("reviewers")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_ticket"))
        batch_op.drop_index(batch_op.f("ix_audit_events_tenant"))
        batch_op.drop_index(batch_op.f("ix_audit_events_request_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_event_type"))
        batch_op.drop_index(batch_op.f("ix_audit_events_created_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_actor"))

    op.drop_table("audit_events")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant"))

    op.drop_table("api_keys")
