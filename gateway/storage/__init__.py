"""Storage: SQLAlchemy 2 models, the engine/session factories and the Alembic helpers.

Importing this package does not import the gateway's settings: every entry point takes a database URL,
an Engine or a Session as a parameter.
"""

from gateway.storage import policy_models, wordlist_models  # noqa: F401  (their tables on Base.metadata)
from gateway.storage.base import Base, UTCDateTime, new_id, utcnow
from gateway.storage.engine import DEFAULT_DATABASE_URL, make_engine, make_session_factory
from gateway.storage.models import (
    DECIDED_STATES,
    ApiKey,
    AuditEvent,
    GenerationOutput,
    GenerationRequest,
    ModerationAction,
    OutputStatus,
    RequestStatus,
    Reviewer,
    ReviewerRole,
    ReviewItem,
    ReviewState,
)

__all__ = [
    "DECIDED_STATES",
    "DEFAULT_DATABASE_URL",
    "ApiKey",
    "AuditEvent",
    "Base",
    "GenerationOutput",
    "GenerationRequest",
    "ModerationAction",
    "OutputStatus",
    "RequestStatus",
    "ReviewItem",
    "ReviewState",
    "Reviewer",
    "ReviewerRole",
    "UTCDateTime",
    "make_engine",
    "make_session_factory",
    "new_id",
    "utcnow",
]
