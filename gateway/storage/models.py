"""The ORM models: requests and outputs, the review queue, reviewers, API keys and the audit log.

Alembic (``migrations/``) is the only schema source; ``tests/db/test_migrations.py`` fails when these
models drift from the migrations. States are ``StrEnum`` values stored as short strings with a CHECK
constraint (not native PostgreSQL enums: adding a state then needs no ``ALTER TYPE``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false

from gateway.storage.base import Base, UTCDateTime, json_type, new_id, utcnow


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    """A portable enum column: VARCHAR + named CHECK constraint, storing the member *values*."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class RequestStatus(enum.StrEnum):
    RECEIVED = "received"
    GENERATING = "generating"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ModerationAction(enum.StrEnum):
    RELEASE = "release"
    MASK = "mask"
    HOLD = "hold"
    BLOCK = "block"


class OutputStatus(enum.StrEnum):
    RELEASED = "released"
    HELD = "held"
    BLOCKED = "blocked"
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"
    FAILED = "failed"


class ReviewState(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"


DECIDED_STATES: frozenset[ReviewState] = frozenset(
    {ReviewState.APPROVED, ReviewState.EDITED, ReviewState.REJECTED}
)


class ReviewerRole(enum.StrEnum):
    REVIEWER = "reviewer"
    ADMIN = "admin"


class GenerationRequest(Base):
    """One client call to Generate: what was asked, by whom, with which model, and how it ended."""

    __tablename__ = "generation_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    api_key_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("api_keys.id", ondelete="SET NULL"))
    model_id: Mapped[str] = mapped_column(String(256))
    model_revision: Mapped[str | None] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)
    prompt_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[RequestStatus] = mapped_column(
        _enum(RequestStatus, "request_status"), default=RequestStatus.RECEIVED
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    outputs: Mapped[list[GenerationOutput]] = relationship(
        back_populates="request",
        order_by=lambda: [GenerationOutput.prompt_index, GenerationOutput.sequence_index],
    )


class GenerationOutput(Base):
    """One generated sequence and its moderation verdict.

    ``generated_text`` is the model's original text and is never overwritten; ``released_text`` is what
    a client may see (masked, edited or approved text) and stays None while held, blocked or rejected.
    """

    __tablename__ = "generation_outputs"
    __table_args__ = (UniqueConstraint("generation_request_id", "prompt_index", "sequence_index"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    generation_request_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("generation_requests.id", ondelete="CASCADE")
    )
    prompt_index: Mapped[int] = mapped_column(Integer)
    sequence_index: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    generated_text: Mapped[str] = mapped_column(Text)
    released_text: Mapped[str | None] = mapped_column(Text)
    # A stream's output: what the client was sent while it streamed. For a held or blocked one, the prefix
    # released before the moderator stopped the release (the audit log carries no text). None: unary.
    streamed_text: Mapped[str | None] = mapped_column(Text)
    scores: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)
    reasons: Mapped[list[Any]] = mapped_column(json_type(), default=list)
    spans: Mapped[list[Any]] = mapped_column(json_type(), default=list)
    action: Mapped[ModerationAction] = mapped_column(_enum(ModerationAction, "moderation_action"))
    status: Mapped[OutputStatus] = mapped_column(_enum(OutputStatus, "output_status"))
    policy_name: Mapped[str] = mapped_column(String(128))
    policy_version: Mapped[str] = mapped_column(String(64))
    scorers: Mapped[list[Any]] = mapped_column(json_type(), default=list)
    # The identity-term re-scorings and the shadow policies' decisions (moderation.replay.record_decision).
    identity_checks: Mapped[list[Any]] = mapped_column(json_type(), default=list, server_default="[]")
    shadow: Mapped[list[Any]] = mapped_column(json_type(), default=list, server_default="[]")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    generated_tokens: Mapped[int] = mapped_column(Integer, default=0)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    ticket: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    request: Mapped[GenerationRequest] = relationship(back_populates="outputs")
    review_item: Mapped[ReviewItem | None] = relationship(back_populates="output")


class ReviewItem(Base):
    """A held output waiting for (or decided by) a human.

    ``version`` is an explicit optimistic lock, bumped by every state change (claim, release, decide);
    the queue functions change it only through conditional UPDATEs (``WHERE version = :expected``), so
    two reviewers, threads or replicas can never both win. A lease renewal does not bump it: the page a
    reviewer is looking at stays valid while their heartbeat keeps the claim alive.
    """

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_queue", "state", "escalated", "priority", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    output_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("generation_outputs.id", ondelete="CASCADE"), unique=True
    )
    state: Mapped[ReviewState] = mapped_column(
        _enum(ReviewState, "review_state"), default=ReviewState.PENDING
    )
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    # A blocked output its client appealed (the policy blocked it; a human now decides).
    appeal: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    appeal_reason: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(36), ForeignKey("reviewers.id"))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)
    decided_by: Mapped[str | None] = mapped_column(String(36), ForeignKey("reviewers.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(Text)
    edited_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    output: Mapped[GenerationOutput] = relationship(back_populates="review_item")


class Reviewer(Base):
    """A human who works the review queue; admins also see escalated items."""

    __tablename__ = "reviewers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[ReviewerRole] = mapped_column(
        _enum(ReviewerRole, "reviewer_role"), default=ReviewerRole.REVIEWER
    )
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Every web session cookie carries the epoch it was issued under and is refused once it differs:
    # logout, a password change and disabling the account add one, ending all of the reviewer's sessions.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def is_admin(self) -> bool:
        return self.role == ReviewerRole.ADMIN


class ApiKey(Base):
    """A client API key: belongs to one tenant, carries scopes and the moderation policy to apply.

    Only ``sha256(secret)`` is stored. A fast hash is enough here, unlike for passwords: the secret is
    256 bits from ``secrets``, so there is nothing to brute-force or look up in a dictionary, and a slow
    hash would add its cost to every authenticated request. ``key_prefix`` is public (shown in listings,
    used to find the row); the rest of the secret is shown once at creation.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(128))
    key_prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(json_type(), default=list)
    policy: Mapped[str | None] = mapped_column(String(128))
    # Set for keys with the `review` scope: the reviewer account the key acts as.
    reviewer_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("reviewers.id"))
    # Per-minute limits for this key; None: the gateway's default (settings), 0: unlimited.
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """One append-only, hash-chained audit record.

    ``id`` is the chain position: assigned by :func:`gateway.audit.append` as last id + 1 while holding
    the append lock (not by a sequence, whose rolled-back values leave gaps), so ids are contiguous and
    a deleted row shows as a gap. ``hash = sha256(prev_hash + canonical JSON of the fields)``.
    ``payload`` is plain JSON even on PostgreSQL: JSONB rewrites numbers (``1e16`` comes back as an
    integer), which would change the canonical form and raise false tampering alarms.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    tenant: Mapped[str | None] = mapped_column(String(128), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ticket: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON(), default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class RateBucket(Base):
    """One token bucket of the shared rate limiter (`rate_limit_store = "database"`).

    ``level`` is what the bucket held at ``stamp`` (wall-clock epoch seconds); the level now is computed
    from the refill rate (``per_minute`` per minute), so a bucket is written only when something is taken
    or given back. A changed ``per_minute`` (the key's limit was edited) starts the bucket full again,
    as the in-process limiter does.
    """

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    per_minute: Mapped[int] = mapped_column(Integer)
    level: Mapped[float] = mapped_column(Float)
    stamp: Mapped[float] = mapped_column(Float)


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class WebhookEndpoint(Base):
    """A tenant's webhook receiver: the URL, the event types it subscribed to, and the signing secret.

    The secret is stored as given out (not hashed), because the gateway signs with it; it is shown once,
    when the endpoint is created, and never listed (gateway/webhooks/endpoints.py).
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(json_type(), default=list)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint in the outbox, written in the transaction of the change it reports.

    ``id`` orders the outbox: an event is not sent while an earlier one for the same endpoint and ticket
    is still pending. ``next_attempt_at`` is both the retry time and, while a worker sends, its lease:
    a worker that dies mid-send leaves a row that falls due again (at least once). ``retry_since`` is
    where the give-up clock starts (creation, or the last `redeliver`). ``body`` is the exact JSON sent.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_order", "endpoint_id", "ticket", "state"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    tenant: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(64))
    ticket: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[DeliveryState] = mapped_column(
        _enum(DeliveryState, "delivery_state"), default=DeliveryState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retry_since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReviewerVerdict(Base):
    """One reviewer's verdict on an item whose policy asks for several (`[review.consensus.POLICY]`,
    gateway/review/consensus.py). Not a decision: the item's final decision is made once, on the item
    row, when the verdicts are combined. One verdict per reviewer and item (the unique constraint); the
    edited text of an edit verdict stays here (the rule decides whether any text is released)."""

    __tablename__ = "review_verdicts"
    __table_args__ = (UniqueConstraint("item_id", "reviewer_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    item_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("review_items.id", ondelete="CASCADE"), index=True
    )
    reviewer_id: Mapped[str] = mapped_column(String(36), ForeignKey("reviewers.id"))
    decision: Mapped[str] = mapped_column(String(16))
    edited_text: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PromptRunState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"


class PromptRun(Base):
    """A held prompt a reviewer approved: its generation, to be run once by a gateway's prompt-run worker
    (gateway/prompt_runs.py).

    Written in the transaction of the approval, so an approval is never lost between "decided" and
    "generated". ``next_attempt_at`` is both the retry time and, while a worker runs it, its lease: a
    worker that dies mid-run leaves a row that falls due again. ``generation_request_id`` is the request
    the run recorded (set in the transaction of that request's outcome, with ``state = done``).
    """

    __tablename__ = "prompt_runs"
    __table_args__ = (Index("ix_prompt_runs_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    output_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("generation_outputs.id", ondelete="CASCADE"), unique=True
    )
    state: Mapped[PromptRunState] = mapped_column(
        _enum(PromptRunState, "prompt_run_state"), default=PromptRunState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    generation_request_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("generation_requests.id", ondelete="SET NULL")
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class QaState(enum.StrEnum):
    PENDING = "pending"
    HARMFUL = "harmful"
    FINE = "fine"


class QaSample(Base):
    """A released (or masked) output drawn into the QA sample, and the label a reviewer gave it.

    Written in the transaction that records the output (gateway/review/qa.py decides, from the output id
    and the policy's `sample_rate`, which is kept here: the report weights each label by 1/rate). The
    client already has the text: a label changes nothing for it, it only measures the policy. A label
    is set once, by a conditional UPDATE from pending, so two reviewers can never both label a sample.
    """

    __tablename__ = "qa_samples"
    __table_args__ = (Index("ix_qa_samples_queue", "state", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    output_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("generation_outputs.id", ondelete="CASCADE"), unique=True
    )
    policy_name: Mapped[str] = mapped_column(String(128))
    sample_rate: Mapped[float] = mapped_column(Float)
    state: Mapped[QaState] = mapped_column(_enum(QaState, "qa_state"), default=QaState.PENDING)
    categories: Mapped[list[str]] = mapped_column(json_type(), default=list)  # harmful in these
    labelled_by: Mapped[str | None] = mapped_column(String(36), ForeignKey("reviewers.id"))
    labelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    output: Mapped[GenerationOutput] = relationship()
